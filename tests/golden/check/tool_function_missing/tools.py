def count_letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)
