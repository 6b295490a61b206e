from agents.engine.context import fit_history, history_budget, system_prompt
from agents.tokens import MESSAGE_OVERHEAD, count_tokens, split_tokens


def test_the_tokenizer_splits_text_losslessly():
    text = "Refunds: 30 days, no questions asked!\n\nSee the handbook."
    assert "".join(split_tokens(text)) == text
    assert count_tokens(text) == len(split_tokens(text))


def test_history_keeps_the_newest_messages_that_fit():
    history = [("user", f"question number {i} " * 10) for i in range(20)]
    per_message = count_tokens(history[0][1]) + MESSAGE_OVERHEAD
    kept = fit_history(history, budget=per_message * 3 + 1)
    assert [m.content for m in kept] == [c for _, c in history[-3:]]


def test_the_newest_message_is_kept_even_when_it_alone_is_too_long():
    kept = fit_history([("user", "old"), ("user", "word " * 500)], budget=10)
    assert [m.content for m in kept] == ["word " * 500]


def test_a_trimmed_history_opens_with_the_user():
    history = [("user", "a " * 50), ("assistant", "b " * 50), ("user", "c")]
    budget = count_tokens("b " * 50) + count_tokens("c") + 2 * MESSAGE_OVERHEAD
    kept = fit_history(history, budget=budget)
    assert [m.role for m in kept] == ["user"]


def test_the_budget_leaves_room_for_the_answer_and_the_prompt():
    budget = history_budget(context_window=1000, max_tokens=300, system="Be brief.", tools=[])
    assert budget == 1000 - 300 - count_tokens("Be brief.") - 64


def test_knowledge_passages_are_numbered_in_the_system_prompt():
    prompt = system_prompt("Be brief.", [{"n": 1, "title": "Refunds", "content": "30 days."}])
    assert prompt.startswith("Be brief.")
    assert prompt.endswith("[1] Refunds: 30 days.")
