def upper_q(question: str) -> str:
    return question.upper()
