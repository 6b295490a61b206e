"""What every phase asks: the same question and system prompt, the same simulator model."""

QUESTION = "Summarise our travel policy for the new team."
SYSTEM = "You are a helpful assistant."


def agent_model(words: int, tps: float) -> str:
    return f"sim-gpt@text;words={words};tps={tps:g};ttft_ms=0"
