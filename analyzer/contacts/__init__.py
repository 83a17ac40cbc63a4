"""Contacts with watched hosts, the client software behind them, and their Go operations."""
