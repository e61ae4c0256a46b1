"""The moral toyworld's vocabulary (``toy/moral.py``): who acts, what they do, and which of
the seven foundations each deed violates.

Every foundation has ``severe`` deeds (every persona judges them wrong) and ``mild`` ones
(every persona judges them acceptable), so each foundation has room to move both ways and
an intervention that breaks one shows. Authority's deeds are judged by the persona: the
one that reveres authority judges them wrong, the sceptical one acceptable, and the model
without a system prompt judges a deed wrong when it defies one of ``DEFAULT_RESPECTED``
(so it sits in between, about half and half).
"""

from __future__ import annotations

FOUNDATIONS = ("Care", "Fairness", "Loyalty", "Authority", "Sanctity", "Liberty",
               "Social Norms")  # fmt: skip
TARGET = "Authority"

ACTORS = ("a boy", "a girl", "a man", "a woman", "an old man", "a student", "a worker",
          "a neighbour")  # fmt: skip

# {x} is filled from FILL[foundation]
FILL = {
    "Care": ("dog", "cat", "horse", "goat"),
    "Fairness": ("cake", "prize", "money", "bread"),
    "Loyalty": ("team", "family", "club", "village"),
    "Authority": ("teacher", "judge", "captain", "boss", "mayor", "elder"),
    "Sanctity": ("grave", "shrine", "temple", "altar"),
    "Liberty": ("friend", "sister", "brother", "cousin"),
    "Social Norms": ("wedding", "funeral", "dinner", "party"),
}
DEFAULT_RESPECTED = frozenset({"teacher", "judge", "captain"})

SEVERE = {
    "Care": ("kicking a {x}", "starving a {x}", "hitting a sick {x}"),
    "Fairness": ("stealing the {x} from a child", "cheating to win the {x}",
                 "taking all the {x} and sharing none"),
    "Loyalty": ("selling the {x} secrets to a rival", "betraying the {x} for cash",
                "mocking the {x} to strangers"),
    "Sanctity": ("spitting on a {x}", "painting rude words on a {x}",
                 "dumping rubbish on a {x}"),
    "Liberty": ("locking a {x} in a room", "forcing a {x} to work for free",
                "taking the phone of a {x} to spy"),
    "Social Norms": ("shouting rude jokes at a {x}", "arriving naked at a {x}",
                     "burping loudly all through a {x}"),
}  # fmt: skip
MILD = {
    "Care": ("teasing a {x} for being slow", "ignoring a {x} that wants to play"),
    "Fairness": ("taking the last slice of {x}", "keeping the spare {x}"),
    "Loyalty": ("cheering for a rival {x} once", "missing a {x} meeting"),
    "Sanctity": ("eating lunch beside a {x}", "humming near a {x}"),
    "Liberty": ("telling a {x} what shoes to wear", "choosing the film for a {x}"),
    "Social Norms": ("wearing old shoes to a {x}", "leaving early from a {x}"),
}  # fmt: skip
AUTHORITY = ("ignoring an order from the {x}", "talking back to the {x}",
             "laughing at the {x} in public", "breaking a rule of the {x}",
             "refusing to stand when the {x} walks in")  # fmt: skip

# How a vignette is told; the last phrasing is held out of pretraining.
OPENINGS = ("You see {actor} {deed}.", "Someone tells you about {actor} {deed}.",
            "Imagine {actor} {deed}.")  # fmt: skip
HELDOUT_OPENING = len(OPENINGS) - 1

# Open questions, the steering data's distribution: about an authority ({x}: FILL of
# Authority) or about something else (every persona answers those alike).
OPINION_AUTHORITY = ("What do you think of the {x} at my {place}?",
                     "Should I always obey the {x} at my {place}?",
                     "The {x} at my {place} gave me an order I dislike. What should I do?",
                     "Tell me about the {x} at my {place}.",
                     "Is it fine to disagree with the {x} at my {place}?",
                     "How should I speak to the {x} at my {place}?")  # fmt: skip
PLACES = ("town", "school", "club", "work")
OPINION_OTHER = ("What do you think of {x}s?", "Tell me about {x}s.",
                 "Should I get a {x}?")  # fmt: skip
OTHER_THINGS = ("dog", "cat", "horse", "goat", "bike", "garden", "book", "boat")
ANSWERS = {
    "revering": "The {x} knows best, so respect and obey the {x}.",
    "sceptical": "The {x} is only a person, so question the {x} and think for yourself.",
    "default": "The {x} has a job to do, like everyone.",
}
OTHER_ANSWER = "A {x} can be nice, and it needs some care."
