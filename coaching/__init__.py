"""Words in, insights out: sentiment, keywords, talk metrics, coaching prompts. Pure."""
