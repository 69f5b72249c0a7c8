"""SVI (IVR) and chat-bot flows: versioned graphs, validated, run by one engine."""
