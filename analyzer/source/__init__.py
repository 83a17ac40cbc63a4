"""Sources: capture files (pcap, pcapng) decoded into transport segments."""
