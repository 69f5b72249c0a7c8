"""Citizens: the Contact record, its identities (phones, emails, chat ids), cases and merges."""
