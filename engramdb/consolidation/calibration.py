"""How the default similarity thresholds were chosen, reproducibly.

The calibration set is hand-written (for this module, not taken from any data
set): 48 statements of the kind an agent stores, each with four partners:

* ``reworded``: the same statement as logs restate it: fillers, a synonym or
  two, casing and punctuation (``"Well, i am moving to Lisbon in May!!"``);
* ``paraphrase``: the same fact in other words;
* ``contrast``: the same wording with one fact changed (a name, a place, a
  number, a negation): the pair dedup must *not* merge;
* ``topic``: another statement about the same thing: related, but neither a
  duplicate nor a variant.

Different-topic pairs are every statement against the other 47 statements.

:func:`calibrate` embeds the set and derives both thresholds by fixed rules:

* **duplicate** = the lowest threshold (on a 0.01 grid) at which at most
  ``max_contrast_merge`` (5%) of contrast pairs and no topic pair would merge.
  Merging is lossy only for contrast pairs, and archived members stay findable,
  so a small rate is accepted in exchange for catching restatements.
* **cluster** = the lowest threshold (on a 0.05 grid) at which no topic pair
  would join. A gist archives its members, so a member must be a variant of
  the cluster's centre (a restatement, or the same line with a detail changed),
  not merely another statement on its topic: those stay memories of their own.

For the bundled all-MiniLM-L6-v2 (cosine percentiles p5 / p50 / p95)::

    reworded    0.903 / 0.950 / 0.993
    paraphrase  0.738 / 0.875 / 0.945
    contrast    0.455 / 0.666 / 0.871
    topic       0.261 / 0.451 / 0.601   (max 0.66)
    different  -0.006 / 0.120 / 0.303

    duplicate 0.89: merges 96% of reworded, 38% of paraphrase, 4% of contrast,
                    no topic or different-topic pair
    cluster   0.70: joins 100% of reworded, 98% of paraphrase, 44% of contrast,
                    no topic or different-topic pair

On real conversation text (``benchmarks/compression.py`` on the LoCoMo development
file) the duplicate threshold merges 99.0% of the reworded copies of turns with
their turn, and 94 of 1,382 merges (6.8%) join memories of different turns:
mostly phatic lines ("Thanks! Talk to you later!") and observations restating
one fact, a few contrast pairs ("my fourth tournament" / "my first tournament").

Run ``python -m engramdb.consolidation.calibration`` to print the figures for the
bundled all-MiniLM-L6-v2, or call :func:`calibrate` with another embedder's
``embed`` to calibrate a policy for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engramdb._types import FloatMatrix

__all__ = ["PAIRS", "Calibration", "calibrate"]

# (statement, reworded, paraphrase, contrast, topic)
PAIRS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "I'm moving to Lisbon in May.",
        "Well, i am moving to Lisbon in May!!",
        "In May I'll relocate to Lisbon.",
        "I'm moving to Berlin in May.",
        "I found a small apartment in Lisbon with a balcony.",
    ),
    (
        "My sister Anna is getting married next spring.",
        "Oh, my sister Anna is getting married next spring",
        "Anna, my sister, will have her wedding next spring.",
        "My sister Anna is getting divorced next spring.",
        "I'm going to be a bridesmaid and need to find a dress.",
    ),
    (
        "I'm allergic to peanuts.",
        "Honestly, I am allergic to peanuts!",
        "Peanuts give me an allergic reaction.",
        "I'm allergic to cats.",
        "I always carry an EpiPen when I eat out.",
    ),
    (
        "We adopted a golden retriever puppy named Max.",
        "So, we adopted a golden retriever puppy named Max!",
        "Our family took in a young golden retriever called Max.",
        "We adopted a black cat named Max.",
        "Max chewed through my new running shoes yesterday.",
    ),
    (
        "I started a new job as a nurse at the city hospital.",
        "Yeah, I began a new job as a nurse at the city hospital.",
        "I've just begun working as a nurse at the hospital in town.",
        "I quit my job as a nurse at the city hospital.",
        "Night shifts at the hospital leave me exhausted.",
    ),
    (
        "My favourite book is Dune.",
        "my favourite book is dune",
        "Dune is the book I love most.",
        "My least favourite book is Dune.",
        "I'm rereading the Dune sequels this summer.",
    ),
    (
        "The team meeting is at 3 pm on Tuesday.",
        "The team meeting is at 3 pm on Tuesday!!",
        "We meet as a team on Tuesday at three in the afternoon.",
        "The team meeting is at 10 am on Thursday.",
        "I need to prepare slides for the team meeting.",
    ),
    (
        "I ran my first marathon in Chicago last October.",
        "Oh, I ran my first marathon in Chicago last October!",
        "Last October I completed my first marathon, in Chicago.",
        "I ran my first half marathon in Boston last April.",
        "My knees still hurt from all the marathon training.",
    ),
    (
        "My daughter Lily just turned seven.",
        "So, my daughter Lily just turned seven.",
        "Lily, my daughter, had her seventh birthday.",
        "My son Leo just turned four.",
        "Lily wants a unicorn cake for her birthday party.",
    ),
    (
        "I'm learning to play the guitar.",
        "Well, I am learning to play the guitar!",
        "I've been taking guitar lessons.",
        "I'm learning to play the piano.",
        "My fingertips are sore from practising chords.",
    ),
    (
        "I prefer window seats on long flights.",
        "Honestly, I prefer window seats on long flights.",
        "On long flights I like to sit by the window.",
        "I prefer aisle seats on long flights.",
        "I always bring a neck pillow on long flights.",
    ),
    (
        "I'm vegetarian and don't eat fish.",
        "I am vegetarian and do not eat fish.",
        "I follow a vegetarian diet, so no fish for me.",
        "I'm vegan and don't eat eggs.",
        "I've been trying new lentil recipes for dinner.",
    ),
    (
        "We went camping at Yosemite with the kids.",
        "So, we went camping at Yosemite with the children!",
        "The kids and I took a camping trip to Yosemite.",
        "We went skiing in Aspen with the kids.",
        "The kids loved roasting marshmallows by the campfire.",
    ),
    (
        "My car broke down on the highway this morning.",
        "Oh, my car broke down on the highway this morning!!",
        "This morning my car stopped working on the motorway.",
        "My bike got a flat tire on the way to work this morning.",
        "The mechanic says the car needs a new alternator.",
    ),
    (
        "I painted a sunset over the lake last weekend.",
        "Well, I painted a sunset over the lake last weekend.",
        "Last weekend I made a painting of the sun setting over the lake.",
        "I painted a portrait of my grandmother last weekend.",
        "I'm thinking of selling some of my landscape paintings.",
    ),
    (
        "My grandfather passed away in March.",
        "my grandfather passed away in march.",
        "In March my grandpa died.",
        "My grandfather turned ninety in March.",
        "I keep his old pocket watch on my desk.",
    ),
    (
        "I volunteer at the animal shelter on Saturdays.",
        "Yeah, I volunteer at the animal shelter on Saturdays!",
        "Every Saturday I help out at the animal shelter.",
        "I volunteer at the food bank on Sundays.",
        "The shelter is running an adoption day next month.",
    ),
    (
        "Our wedding anniversary is on June 12.",
        "Oh, our wedding anniversary is on June 12!",
        "We celebrate our anniversary on the twelfth of June.",
        "Our wedding anniversary is on September 3.",
        "I booked a table at our favourite restaurant for the anniversary.",
    ),
    (
        "I'm training for a triathlon in August.",
        "So, I am training for a triathlon in August.",
        "I'm preparing for an August triathlon.",
        "I'm recovering from a knee injury in August.",
        "Open-water swimming is the hardest part of my training.",
    ),
    (
        "My brother lives in Toronto with his wife.",
        "My brother lives in Toronto with his wife!!",
        "My brother and his wife have their home in Toronto.",
        "My brother lives in Sydney with his girlfriend.",
        "I'm visiting my brother in Toronto for Thanksgiving.",
    ),
    (
        "I graduated with a degree in computer science in 2019.",
        "Well, I graduated with a degree in computer science in 2019.",
        "In 2019 I finished my computer science degree.",
        "I dropped out of a degree in chemistry in 2016.",
        "My thesis was about compilers for small devices.",
    ),
    (
        "I can't stand horror movies.",
        "Honestly, I cannot stand horror movies.",
        "Horror films are something I really dislike.",
        "I love watching horror movies.",
        "My friends dragged me to a scary film on Friday.",
    ),
    (
        "We're renovating the kitchen this summer.",
        "So, we are renovating the kitchen this summer!",
        "This summer we're redoing our kitchen.",
        "We're renovating the bathroom this winter.",
        "We picked white tiles and oak cabinets for the kitchen.",
    ),
    (
        "I take the 7:40 train to work every day.",
        "I take the 7:40 train to work every day!!",
        "Each morning I catch the 7:40 train to the office.",
        "I take the 9:15 bus to work every day.",
        "The train was delayed again because of signal problems.",
    ),
    (
        "My mom is recovering from hip surgery.",
        "Oh, my mom is recovering from hip surgery.",
        "My mother is healing after an operation on her hip.",
        "My mom is scheduled for knee surgery.",
        "I've been driving my mom to physical therapy twice a week.",
    ),
    (
        "I joined a book club that meets on Thursdays.",
        "Yeah, I joined a book club that meets on Thursdays.",
        "I'm now part of a reading group that gets together every Thursday.",
        "I left the chess club that meets on Mondays.",
        "This month the book club is reading a mystery novel.",
    ),
    (
        "I'm saving money to buy a house next year.",
        "Well, i am saving money to buy a house next year",
        "I'm putting money aside so I can buy a home next year.",
        "I'm saving money to buy a car next month.",
        "We've been looking at houses with a garden outside the city.",
    ),
    (
        "My favourite food is my grandmother's lasagna.",
        "My favorite food is my grandmother's lasagna!",
        "Nothing beats the lasagna my grandma makes.",
        "My favourite food is my father's curry.",
        "I asked my grandmother to teach me her pasta recipes.",
    ),
    (
        "I have a dentist appointment on Friday at 9.",
        "So, I have a dentist appointment on Friday at 9.",
        "On Friday at nine I'm seeing the dentist.",
        "I have a doctor's appointment on Monday at 2.",
        "My tooth has been aching since the weekend.",
    ),
    (
        "We visited Japan for two weeks in April.",
        "Oh, we visited Japan for two weeks in April!!",
        "In April we spent two weeks travelling in Japan.",
        "We visited Mexico for one week in December.",
        "The cherry blossoms in Kyoto were beautiful.",
    ),
    (
        "I've been feeling stressed about my exams.",
        "Honestly, I have been feeling stressed about my exams.",
        "My exams are making me anxious.",
        "I've been feeling relieved since my exams ended.",
        "I study in the library until it closes every night.",
    ),
    (
        "My son plays soccer on the school team.",
        "Yeah, my son plays soccer on the school team.",
        "My boy is on the school's football team.",
        "My daughter plays basketball on the club team.",
        "His team won the regional tournament last Saturday.",
    ),
    (
        "I want to learn Spanish before our trip to Peru.",
        "Well, I want to learn Spanish before our trip to Peru!",
        "Before we travel to Peru I'd like to pick up some Spanish.",
        "I want to learn Italian before our trip to Rome.",
        "We're planning to hike the Inca Trail in Peru.",
    ),
    (
        "I work from home on Mondays and Fridays.",
        "I work from home on Mondays and Fridays!!",
        "Mondays and Fridays are my remote work days.",
        "I work in the office on Tuesdays and Wednesdays.",
        "My home office desk is by the window.",
    ),
    (
        "I lost my wallet at the train station.",
        "Oh, I lost my wallet at the train station!",
        "My wallet went missing at the railway station.",
        "I found a wallet at the bus stop.",
        "I had to cancel all my credit cards.",
    ),
    (
        "My favourite band is Radiohead.",
        "my favourite band is radiohead!",
        "Radiohead is the band I like best.",
        "My favourite singer is Adele.",
        "I got tickets to see Radiohead live in July.",
    ),
    (
        "I'm trying to drink less coffee.",
        "So, I am trying to drink less coffee.",
        "I'm cutting back on coffee.",
        "I'm trying to drink more water.",
        "I switched to green tea in the afternoons.",
    ),
    (
        "We planted tomatoes and basil in the garden.",
        "Well, we planted tomatoes and basil in the garden!",
        "In the garden we put in some tomato plants and basil.",
        "We planted roses and tulips in the front yard.",
        "Slugs keep eating the vegetables in our garden.",
    ),
    (
        "I'm afraid of heights.",
        "Honestly, I am afraid of heights!",
        "High places scare me.",
        "I'm afraid of the dark.",
        "I couldn't walk across the glass floor at the tower.",
    ),
    (
        "I had surgery on my left knee in 2021.",
        "I had surgery on my left knee in 2021!!",
        "My left knee was operated on in 2021.",
        "I broke my right wrist in 2018.",
        "I still do physiotherapy exercises for my knee.",
    ),
    (
        "My best friend Sara moved to Seattle.",
        "Oh, my best friend Sara moved to Seattle.",
        "Sara, my closest friend, relocated to Seattle.",
        "My best friend Sara moved back from Seattle.",
        "Sara and I video call every Sunday.",
    ),
    (
        "I'm writing a fantasy novel about dragons.",
        "So, I am writing a fantasy novel about dragons!",
        "I'm working on a fantasy book featuring dragons.",
        "I'm reading a science fiction novel about robots.",
        "I finished the third chapter of my book last night.",
    ),
    (
        "Our flight to London leaves at 6 am on Saturday.",
        "Our flight to London leaves at 6 am on Saturday!!",
        "We fly to London early Saturday, at six in the morning.",
        "Our flight to Paris leaves at 8 pm on Sunday.",
        "I still need to pack for the London trip.",
    ),
    (
        "I got promoted to senior engineer.",
        "Yeah, I got promoted to senior engineer!",
        "I was promoted; I'm a senior engineer now.",
        "I got demoted to junior engineer.",
        "My new role means leading the design reviews.",
    ),
    (
        "I go to yoga class every Wednesday evening.",
        "Well, I go to yoga class every Wednesday evening.",
        "On Wednesday evenings I attend a yoga class.",
        "I go to boxing class every Saturday morning.",
        "Yoga has really helped my back pain.",
    ),
    (
        "My cat Luna is fourteen years old.",
        "my cat luna is fourteen years old.",
        "Luna, my cat, is 14.",
        "My dog Luna is two years old.",
        "Luna sleeps on the radiator all winter.",
    ),
    (
        "I donated blood at the community center.",
        "Oh, I donated blood at the community center!",
        "I gave blood at the community centre.",
        "I donated old clothes at the church.",
        "The nurse said my iron levels were fine.",
    ),
    (
        "We're hosting Thanksgiving dinner for twelve people.",
        "So, we are hosting Thanksgiving dinner for twelve people!!",
        "Twelve guests are coming to our place for Thanksgiving dinner.",
        "We're going to my in-laws for Christmas dinner.",
        "I'm brining the turkey the night before.",
    ),
)


@dataclass(frozen=True)
class Calibration:
    """Similarity figures on the calibration set and the thresholds derived from them.

    Attributes:
        quantiles: Per pair type, the 5th, 25th, 50th, 75th and 95th percentile cosine.
        duplicate: Derived near-duplicate threshold.
        duplicate_rates: At that threshold, the share of each pair type that would merge.
        cluster: Derived cluster threshold.
        cluster_rates: At that threshold, the share of each pair type that would join.
    """

    quantiles: dict[str, tuple[float, ...]]
    duplicate: float
    duplicate_rates: dict[str, float]
    cluster: float
    cluster_rates: dict[str, float]


def pair_similarities(embed: Callable[[Sequence[str]], FloatMatrix]) -> dict[str, np.ndarray]:
    """Cosine similarities of every pair type of the calibration set."""
    texts = [t for row in PAIRS for t in row]
    v = np.asarray(embed(texts), np.float64)
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    v = v.reshape(len(PAIRS), 5, -1)
    out = {
        name: np.einsum("id,id->i", v[:, 0], v[:, col])
        for col, name in enumerate(("reworded", "paraphrase", "contrast", "topic"), start=1)
    }
    anchors = v[:, 0]
    cross = anchors @ anchors.T
    out["different"] = cross[np.triu_indices(len(PAIRS), k=1)]
    return out


def calibrate(
    embed: Callable[[Sequence[str]], FloatMatrix], *, max_contrast_merge: float = 0.05
) -> Calibration:
    """Derive the duplicate and cluster thresholds for an embedder (see the module docstring)."""
    sims = pair_similarities(embed)

    def rates(t: float) -> dict[str, float]:
        return {name: float(np.mean(s >= t)) for name, s in sims.items()}

    duplicate = next(
        t
        for t in np.round(np.arange(0.80, 1.0001, 0.01), 2)
        if rates(t)["contrast"] <= max_contrast_merge and rates(t)["topic"] == 0.0
    )
    cluster = next(
        (t for t in np.round(np.arange(0.30, 0.951, 0.05), 2) if rates(t)["topic"] == 0.0), 0.95
    )
    return Calibration(
        quantiles={
            name: tuple(float(q) for q in np.percentile(s, [5, 25, 50, 75, 95]).round(3))
            for name, s in sims.items()
        },
        duplicate=float(duplicate),
        duplicate_rates=rates(float(duplicate)),
        cluster=float(cluster),
        cluster_rates=rates(float(cluster)),
    )


if __name__ == "__main__":  # pragma: no cover - a report, run by hand
    from engramdb.embeddings import SentenceTransformerEmbedder

    result = calibrate(SentenceTransformerEmbedder(threads=2).embed)
    print("pair type    p5     p25    p50    p75    p95")
    for name, q in result.quantiles.items():
        print(f"{name:11s}" + "".join(f"{x:7.3f}" for x in q))
    print(f"duplicate threshold {result.duplicate}: {result.duplicate_rates}")
    print(f"cluster threshold {result.cluster}: {result.cluster_rates}")
