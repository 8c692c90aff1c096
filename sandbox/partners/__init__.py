"""A local stand-in for the partners an action plan's steps call: Google Sheets (values append), Mailbox Power
(mailings), ClubReady (prospects) and any webhook receiver, recording every request and failing on demand."""
