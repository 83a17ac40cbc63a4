"""The sentences that answer the question first (shared by the HTML page and its summary)."""

from __future__ import annotations

from dataclasses import replace

from analyzer.base.model import Contact, ProcessInfo
from analyzer.report.describe import host_sentences, join_words


def test_sentences_busiest_host_first(contacts: list[Contact]) -> None:
    sentences = host_sentences(contacts)
    assert sentences[0].startswith("proxy.golang.org was contacted 5 times, by go (pid 4121), "
                                   "node (pid 3001) and an unattributed process through DNS, TLS "
                                   "and HTTP (gopls-version-check, module-info and module-zip), "
                                   "because GOPROXY=")
    assert sentences[0].endswith("; 1 finding: tls-untrusted-issuer.")
    assert "go.googlesource.com was contacted twice, by git-remote-https (pid 4188) through DNS "\
           "and TLS (vcs-fetch)." in sentences
    assert "vuln.go.dev was contacted once, by an unattributed process through DNS." in sentences


def test_many_processes_are_summed_up(contacts: list[Contact]) -> None:
    base = contacts[0]
    many = [replace(base, process=ProcessInfo(pid=100 + i, comm=f"go{i}", cmdline=None, ppid=None,
                                              source="ebpf"), cause=None, findings=())
            for i in range(5)]
    many += [replace(base, process=None, cause=None, findings=())] * 2
    (sentence,) = host_sentences(many)
    assert sentence == ("proxy.golang.org was contacted 7 times, by go0 (pid 100), go1 (pid 101), "
                        "go2 (pid 102), 2 more processes and unattributed processes (2 contacts) "
                        "through DNS.")


def test_join_words() -> None:
    assert [join_words(w) for w in ([], ["a"], ["a", "b"], ["a", "b", "c"])] == \
        ["", "a", "a and b", "a, b and c"]
