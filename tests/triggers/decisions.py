"""Running a batched trigger's judge over an in-memory stream, as the trigger service does."""

from modyn_stream.triggers.batched import WAITING, PolicyState, with_trigger


def decide_all(judge, config, index, fired=lambda decision: None):
    """(every decision until none is due, WAITING if the last one waits for a model, else None); `fired` sees
    each decision that fires (a model for it is then trained: the next trigger index)."""
    state, decisions, last = PolicyState(), [], None
    while (decision := with_trigger(judge.evaluate("p", config, index, state, last))) is not None:
        if decision is WAITING:
            return decisions, WAITING
        decisions.append(decision)
        state = decision.state
        if decision.fired:
            last = 0 if last is None else last + 1
            fired(decision)
    return decisions, None
