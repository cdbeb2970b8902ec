"""The default training corpus: made-up creature names from a small syllable grammar.

`rnngen train` with no --data trains on rnngen/data/creatures.txt, which is exactly
`"\\n".join(creature_names())` (a test checks it): written by this project, nothing downloaded.
Regenerate it with `python -m rnngen.corpus > rnngen/data/creatures.txt`.
"""
import os
import random

ONSETS = ["b", "br", "c", "ch", "d", "dr", "g", "gr", "k", "kr", "l", "m", "n", "p", "pr", "ph",
          "r", "s", "st", "sc", "t", "tr", "th", "v", "z", "", "", ""]
VOWELS = ["a", "a", "e", "i", "o", "o", "u", "ae", "ia", "y", "ou", "ei"]
CODAS = ["", "", "", "", "n", "r", "s", "l", "x", "m", "nt", "rk", "ng"]
SUFFIXES = ["saurus", "saurus", "saurus", "don", "odon", "raptor", "ceratops", "mimus", "titan",
            "venator", "nyx", "suchus", "pteryx", "lophus", "ia", "tops", "rex", "onyx", "ops",
            "ornis", "dromeus", "sauria", "gnathus", "cephale"]
DEFAULT_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "creatures.txt")


def creature_names(n=2000, seed=7):
    """n distinct names, deterministic for a given seed (random.Random's choice is stable)."""
    rng = random.Random(seed)
    names, seen = [], set()
    while len(names) < n:
        stem = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                       for _ in range(rng.choice([1, 2, 2, 3])))
        suffix = rng.choice(SUFFIXES)
        if stem[-1] in "aeiouy" and suffix[0] in "aeiouy":
            stem = stem[:-1] or stem
        name = stem + suffix
        if 6 <= len(name) <= 18 and name not in seen:
            seen.add(name)
            names.append(name)
    return names


if __name__ == "__main__":
    print("\n".join(creature_names()), end="")
