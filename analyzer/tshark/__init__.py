"""Reading tshark's dissection output into the project's records (see ``analyzer.tshark_engine``)."""
