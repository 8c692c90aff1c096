"""A local stand-in for ClientTether: its v2 API shapes, multi-unit accounts, and signed webhooks."""
