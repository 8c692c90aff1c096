"""Local stand-ins for the messaging providers: an SMTP sink that records every email, and a Twilio-shaped
SMS API that records every text, honours opt-outs (error 21610) and posts inbound replies, signed, to the
front door."""
