"""Sources: capture files (pcap, pcapng, standard input) read record by record, damage reported."""
