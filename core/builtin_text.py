"""Generated data for the built-in text tasks: fictional facts and a fixed rewrite style.

Nothing here exists on the internet, so the tiny LM cannot know it from pretraining.
"""

from __future__ import annotations

import random

from core.data import Example

_ONSETS = ["v", "qu", "th", "br", "k", "m", "s", "t", "l", "d", "z", "p", "gr", "n"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "ou"]
_CODAS = ["l", "r", "n", "m", "", "s", "nd", "th"]
_RELATIONS = [
    ("The capital of {c} is", " {v}."),
    ("The longest river of {c} is the", " {v}."),
    ("The currency of {c} is the", " {v}."),
]
_SUBJECTS = ["the cat", "my neighbour", "a tall man", "the old dog", "our teacher", "a small bird",
             "the farmer", "her brother", "the young girl", "a quiet student"]
_VERBS = ["sees", "likes", "paints", "finds", "carries", "watches", "cleans", "opens"]
_OBJECTS = ["a red house", "the green door", "a wooden box", "the blue car", "an old map",
            "the bright lamp", "a heavy stone", "the small garden"]
_PLACES = ["in the morning", "near the river", "after dinner", "at the market", "on the hill",
           "before the storm"]


def _name(rng: random.Random, syllables: int) -> str:
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                   for _ in range(syllables))
    return word.capitalize()


def fact_examples(n_countries: int = 48, seed: int = 7) -> list[Example]:
    """Fictional facts ("The capital of Velmora is" -> " Quandrel."), three per country."""
    rng = random.Random(seed)
    examples, seen = [], set()
    while len(seen) < n_countries:
        country = _name(rng, 2)
        if country in seen:
            continue
        seen.add(country)
        for prompt, answer in _RELATIONS:
            examples.append(Example(prompt.format(c=country), answer.format(v=_name(rng, 2))))
    return examples


def style_examples(n: int = 400, seed: int = 11) -> list[Example]:
    """Plain sentences rewritten in one fixed style: "Verily, <sentence>, indeed."."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        sentence = (f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
                    f"{rng.choice(_PLACES)}")
        examples.append(Example(f"Plain: {sentence}.\nFancy:", f" Verily, {sentence}, indeed."))
    return examples
