"""Inbound channels (SMS, voice, e-mail, chat): provider adapters that end in one ingest call."""
