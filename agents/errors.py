"""Plain sentences for every error code a user can meet, in one place."""

ERROR_SENTENCES: dict[str, str] = {
    "rate_limited": "The AI provider is busy right now. Please try again in a moment.",
    "context_length": "This conversation is too long for the model. Start a new thread.",
    "provider_unavailable": "The AI provider is not answering right now. Please try again.",
    "auth": "The AI provider refused our credentials. An administrator needs to check the API key.",
    "invalid_request": "The AI provider could not handle this request.",
    "timeout": "The AI provider took too long to answer. Please try again.",
    "endpoint_refused": (
        "This organisation's AI endpoint is on a private or local network address, which "
        "the platform does not call. An administrator needs to change its URL."
    ),
    "agent_unavailable": "This agent is not available right now.",
    "read_only": (
        "This is a colleague's conversation: you can read it, but only they can write in it."
    ),
    "internal": "Something went wrong on our side. The answer so far has been kept.",
    "quota_exceeded": (
        "Your organisation has used its AI budget for this month. "
        "An owner can raise the budget; until then no new answers can be written."
    ),
}


def sentence_for(code: str) -> str:
    return ERROR_SENTENCES.get(code, ERROR_SENTENCES["internal"])
