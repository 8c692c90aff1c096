"""A local stand-in for QuickBooks Online v3: real HTTP on loopback, QBO's shapes, python-quickbooks unchanged."""
