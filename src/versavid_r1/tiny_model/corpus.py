"""The local text the tiny tokenizer is trained on (no download).

A few dozen hand-written lines in the project's domain (videos, actions, colours, shapes, the
think/answer format, judge replies, JSON) plus lines generated from word lists by a fixed recipe,
a few hundred in all. `corpus_lines()` is a pure function: same output on every call, so the trained
tokenizer is the same on every build.
"""
from __future__ import annotations

import itertools

HANDWRITTEN = """\
The video shows a person cutting a red apple on a wooden board.
A man in a blue shirt opens the door, walks into the kitchen and turns on the light.
First, the woman picks up the green cup. Then she pours water into it. Finally, she drinks.
Two children play with a yellow ball in the park while a dog runs after it.
The camera slowly pans from left to right across a snowy mountain.
In the beginning, the chef slices onions; after that, he fries them in a pan.
A black cat jumps onto the table and knocks over a small glass.
The girl draws a large circle, a small square and a purple triangle on the paper.
Someone assembles a bookshelf: they attach the side panels, insert the shelves and tighten the screws.
The cyclist rides down the hill, stops at the crossing and waves to a friend.
What happens in the video after the man closes the box?
Which object does the woman hold at the beginning of the clip?
Why does the boy stop running near the end of the video?
How many people appear in the second half of the video?
What is the colour of the car that passes behind the tree?
Describe the video in detail.
Describe what the person does during the blacked-out segment.
Infer the event hidden by the black frames from what happens before and after.
The video interleaves two unrelated clips; answer about the clip that the question refers to.
Please think about this question as if you were a human pondering deeply.
Output the thinking process in <think> </think> and the final answer in <answer> </answer> tags.
<think> The person first washes the tomatoes, then cuts them, so the hidden step is cutting. </think><answer> The person cuts the tomatoes into slices. </answer>
<think> The ball is red at the start and the question asks about the start. </think><answer> B </answer>
<think> Counting the dancers gives 3. </think><answer> 3 </answer>
<answer> A </answer>
<answer> The man replaces the flat tyre of the bicycle. </answer>
Answer with the option's letter from the given choices.
Options: A. running B. jumping C. swimming D. sleeping
A. a red square B. a blue circle C. a green triangle D. a white star
Score: 2
Score: 1
Score: 0
True
False
{"score": 2, "reason": "The prediction covers the whole ground truth."}
{"events": ["a man opens the door", "a man walks into the room"]}
{"relation": "entailment"}, {"relation": "neutral"}, {"relation": "contradiction"}
You are a helpful assistant.
You are a strict judge. Compare the predicted answer with the ground truth.
Question: What does the woman do after she sits down?
Ground truth: She reads a newspaper.
Prediction: She starts reading a paper.
The timestamps are 0.0, 0.5, 1.0, 1.5, 2.0 and 2.5 seconds; the video is 10 seconds long at 30 fps.
Frames 0 to 15 are sampled uniformly from 300 frames.
The numbers 0 1 2 3 4 5 6 7 8 9 10 11 12 16 24 28 32 64 128 196 256 512 1024 2048 appear here.
A tall green tree stands next to a short grey building under a bright orange sky.
Meanwhile, a woman in a white dress is slowly walking along the beach.
The player kicks the ball, the goalkeeper dives, and the crowd cheers loudly.
Lastly, he puts the tools back into the drawer and cleans the table with a cloth.
Subsequently, the water boils and she adds the pasta.
Initially the screen is dark; later a bright light appears in the centre.
The hexagon rotates clockwise while the pentagon moves up and down.
A brown horse gallops across the field, followed by a white foal.
She writes a note, folds it twice, and places it in an envelope.
The mechanic lifts the car, removes the wheel and checks the brakes.
Whenever the bell rings, the students stand up and leave the classroom.
Once the paint dries, the artist adds thin black lines to the picture.
"""

COLOURS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple", "pink", "grey", "brown")
SHAPES = ("circle", "square", "triangle", "rectangle", "star", "hexagon", "cube", "sphere", "cone", "line")
SUBJECTS = ("The man", "The woman", "A child", "The chef", "A dog", "The player", "The dancer",
            "A worker", "The teacher", "A cat", "Two people", "The driver")
ACTIONS = ("picks up", "puts down", "throws", "catches", "paints", "moves", "opens", "closes",
           "cleans", "cuts", "holds", "pushes", "pulls", "drops", "carries", "rotates")
CONNECTIVES = ("Then", "Next", "After that", "Later", "Finally", "Meanwhile", "At first", "Suddenly")
PLACES = ("in the kitchen", "on the street", "in the garden", "at the beach", "in a small room",
          "on the stage", "near the river", "inside the car")
QUESTIONS = ("What does {s} do {p}?", "Where is the {c} {sh}?", "Which {sh} is {c}?",
             "What happens after {s2} {a} the {c} {sh}?")


def _generated_lines() -> list[str]:
    lines: list[str] = []
    combos = itertools.product(range(len(SUBJECTS)), range(len(ACTIONS)), range(len(COLOURS)))
    for i, (si, ai, ci) in enumerate(combos):
        if i % 7:  # a fixed thinning: about 300 lines of the 2,112 combinations
            continue
        s, a, c = SUBJECTS[si], ACTIONS[ai], COLOURS[ci]
        sh = SHAPES[(si + ai + ci) % len(SHAPES)]
        p = PLACES[(si * 3 + ci) % len(PLACES)]
        conn = CONNECTIVES[(ai + ci) % len(CONNECTIVES)]
        nxt = ACTIONS[(ai + 5) % len(ACTIONS)]
        lines.append(f"{s} {a} the {c} {sh} {p}. {conn}, {s.lower()} {nxt} it.")
        if i % 3 == 0:
            q = QUESTIONS[i % len(QUESTIONS)].format(s=s.lower(), s2=s.lower(), p=p, a=a, c=c, sh=sh)
            letter = "ABCD"[i % 4]
            lines.append(f"{q} <think> {s} {a} it {p}. </think><answer> {letter} </answer>")
    for n in range(0, 200, 7):
        lines.append(f"At {n / 10:.1f} seconds, frame {n} of {n * 3 + 30} shows {COLOURS[n % len(COLOURS)]} objects.")
    return lines


def corpus_lines() -> list[str]:
    """Every line of the training text, in a fixed order."""
    return HANDWRITTEN.splitlines() + _generated_lines()
