"""The synthetic participant's words: interview answers whose content follows the PHQ-8 items.

``participant_sentences(items, rng)`` yields an endless stream of English sentences (4-25
words) from composable templates: a topic is drawn per sentence, its template's slots
are filled from lexicons (recursively), and hedges, tails and follow-up clauses are
added. What the items change, in the directions the literature reports (more talk
about the symptom, more first-person and negated, more absolutist and negative wording
with severity: Rude et al. 2004; Al-Mosaiwi & Johnstone 2018):

=============  ================================================================
item score     effect on the text
=============  ================================================================
item k = 0     few sentences on that symptom; most say it is fine, 1 in 4 is a
               mild everyday complaint ("a bit tired now and then")
item k = 1..3  share of sentences on that symptom 0.03 -> 0.08 -> 0.20 -> 0.40
               (weight relative to 1.0 for all everyday topics together, times
               personal disclosure factors: one overall, log-normal sigma 0.35,
               one per item, log-normal sigma 0.5, and 1 in 10 symptoms nearly
               never told, weight x 0.1); frequency and degree wording
               from "now and then / a bit" to "every single day / extremely";
               score 3 adds the absolute, most severe templates
total / 24     share of everyday answers told negatively (not seeing family,
               work piling up, no plans): about 4 % at 0 to 55 % at 24
total / 24     share of uncertain hedges ("I don't know, ...") among openers
energy,        fewer follow-up clauses (shorter answers), up to -30 %
psychomotor
=============  ================================================================

Per person (drawn once from the rng): a personal subset of every lexicon with its
own word preferences, a subset of templates, topic preferences among the everyday
topics, disclosure (how readily symptoms come up, log-normal), verbosity, hedging,
contraction habit, and which way sleep, appetite and psychomotor symptoms go
(insomnia or oversleeping, eating less or more, slowed or restless). Text therefore
informs about the severity band without giving the items away.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from app.contract import PHQ8_ITEMS

MIN_WORDS = 4
MAX_WORDS = 25

# relative weight of a symptom topic by its item score; everyday topics weigh 1.0 together
SYMPTOM_WEIGHT = (0.03, 0.08, 0.20, 0.40)
# chance that a person keeps one symptom to themselves (its weight drops tenfold)
UNTOLD_CHANCE = 0.1
# chance that a sentence on a symptom scored 0 is still a mild complaint
EVERYDAY_COMPLAINT = 0.25

# -- levelled slots: one list per item score 1, 2, 3 (score 0 never uses them) -----------
_LEVELLED: dict[str, dict[int, list[str]]] = {
    # frequency, placed at the end of a clause
    "freq": {
        1: [
            "some days",
            "now and then",
            "every once in a while",
            "from time to time",
            "on a few days",
            "every so often",
            "once in a while",
        ],
        2: [
            "most days",
            "a lot of the time",
            "more often than not",
            "more days than not",
            "several days a week",
            "pretty often",
            "most of the week",
        ],
        3: [
            "every single day",
            "nearly every day",
            "all the time",
            "pretty much every day",
            "constantly",
            "day after day",
            "day in and day out",
        ],
    },
    "freq_start": {
        1: ["some days", "now and then", "once in a while", "every so often"],
        2: ["most days", "a lot of the time", "more often than not"],
        3: ["every single day", "nearly every day", "pretty much every day", "day after day"],
    },
    # degree before an adjective or adverb
    "too_much": {
        1: ["a bit too much", "slightly too much", "more than I should"],
        2: ["way too much", "far too much", "a lot more than I should"],
        3: ["way, way too much", "far more than ever", "too much, all day long"],
    },
    "deg": {
        1: ["a bit", "a little", "slightly", "somewhat", "kind of", "sort of"],
        2: ["quite", "really", "pretty", "very", "fairly"],
        3: ["extremely", "incredibly", "so", "terribly", "really, really", "awfully"],
    },
    "amount": {
        1: ["a little", "some", "a bit of"],
        2: ["a lot of", "quite a bit of", "real"],
        3: ["constant", "terrible", "so much"],
    },
    "as_much": {
        1: ["as much as I used to", "quite as much", "the way I used to"],
        2: ["much anymore", "nearly as much as before", "much these days"],
        3: ["at all anymore", "at all", "one bit anymore"],
    },
    "lost_share": {
        1: ["a little", "some"],
        2: ["a lot of", "most of my"],
        3: ["all", "pretty much all", "every bit of my"],
    },
    "weight_amount": {
        1: ["a couple of pounds", "a few pounds"],
        2: ["quite a bit of weight", "maybe ten pounds"],
        3: ["a lot of weight", "way too much weight", "more weight than I want to admit"],
    },
    "late_clock": {
        1: ["midnight", "half past eleven", "around midnight"],
        2: ["one or two", "after one", "two in the morning"],
        3: ["three or four", "almost morning", "four in the morning"],
    },
    "wake_clock": {
        1: ["five", "half past five"],
        2: ["four", "half past three"],
        3: ["three", "two or three"],
    },
    "bed_hours": {
        1: ["ten", "nine or ten"],
        2: ["eleven", "twelve"],
        3: ["fourteen", "most of the day", "twelve or more"],
    },
}

# -- plain slots -------------------------------------------------------------------------
_SLOTS: dict[str, list[str]] = {
    "nowadays": ["lately", "these days", "at the moment", "right now", "most of the time"],
    "lately": [
        "lately",
        "these days",
        "recently",
        "for a while now",
        "over the past few weeks",
        "this month",
        "since the spring",
        "the last couple of weeks",
    ],
    "past_time": [
        "last week",
        "a few days ago",
        "on Sunday",
        "last weekend",
        "the other day",
        "yesterday",
        "last month",
        "on Tuesday",
    ],
    "future_time": [
        "next weekend",
        "in a couple of weeks",
        "this Saturday",
        "next month",
        "over the holidays",
        "on Friday",
        "later this year",
    ],
    "day_part": ["morning", "afternoon", "evening", "night", "day"],
    "season": ["summer", "spring", "fall", "winter"],
    "hobby": [
        "reading",
        "cooking",
        "running",
        "gardening",
        "painting",
        "playing guitar",
        "going to the gym",
        "watching movies",
        "hiking",
        "fishing",
        "video games",
        "knitting",
        "photography",
        "playing football",
        "swimming",
        "baking",
        "playing the piano",
        "cycling",
        "board games",
        "going out with friends",
        "woodworking",
        "yoga",
        "dancing",
        "doing puzzles",
        "birdwatching",
        "singing in the choir",
        "working on my car",
        "drawing",
    ],
    "relative": [
        "sister",
        "brother",
        "mom",
        "dad",
        "daughter",
        "son",
        "cousin",
        "grandmother",
        "partner",
        "wife",
        "husband",
        "aunt",
        "uncle",
        "best friend",
        "roommate",
        "girlfriend",
        "boyfriend",
    ],
    "job": [
        "a nurse",
        "a teacher",
        "an accountant",
        "a mechanic",
        "a software developer",
        "a cashier",
        "a delivery driver",
        "an electrician",
        "a receptionist",
        "a chef",
        "a warehouse supervisor",
        "a bank teller",
        "a hairdresser",
        "a carpenter",
        "a social worker",
        "a lab technician",
        "a bus driver",
        "a paralegal",
    ],
    "work_place": [
        "at a small clinic",
        "downtown",
        "near my house",
        "at a school across town",
        "for a local company",
        "at the hospital",
        "for the city",
        "at a busy restaurant",
        "at a big office in town",
        "from home most of the week",
    ],
    "coworker": [
        "my manager",
        "my boss",
        "one of my coworkers",
        "my supervisor",
        "the new guy on my team",
        "a colleague of mine",
    ],
    "coworker_pred": [
        "is really easy to get along with",
        "helped me out a lot this week",
        "is moving to another team soon",
        "just came back from vacation",
        "is always making everyone laugh",
        "gave me some good feedback {past_time}",
    ],
    "work_good": [
        "busy but fine",
        "pretty good",
        "going well",
        "steady",
        "interesting",
        "a bit hectic but okay",
        "better than last year",
        "pretty quiet",
    ],
    "work_bad": [
        "hard to keep up with",
        "really stressful",
        "too much for me",
        "overwhelming",
        "a struggle",
        "more than I can handle",
    ],
    "project_adj": [
        "actually kind of fun",
        "a lot of work",
        "going better than expected",
        "keeping us busy",
        "pretty interesting so far",
    ],
    "family_pos": [
        "came to visit {past_time}",
        "just had a baby",
        "is starting college in the fall",
        "called me {past_time} and we talked for an hour",
        "is doing really well",
        "got a new job {past_time}",
        "is coming over for dinner {future_time}",
        "has been helping me fix up the house",
        "and I went to a concert {past_time}",
    ],
    "weather_adj": [
        "really nice",
        "pretty warm",
        "cold and windy",
        "rainy",
        "all over the place",
        "mild",
        "sunny most days",
        "a bit grey",
        "humid",
    ],
    "enjoy": ["enjoy", "like", "love", "really like", "still enjoy"],
    "when": [
        "on the weekends",
        "after work",
        "in the evenings",
        "whenever I get the chance",
        "on Sunday mornings",
        "a couple of times a week",
        "when the weather is nice",
    ],
    "club": [
        "running club",
        "book club",
        "pottery class",
        "community garden",
        "local choir",
        "Spanish class",
        "climbing gym",
    ],
    "plan_ing": [
        "visiting my {relative}",
        "going camping",
        "painting the kitchen",
        "starting a new course",
        "taking a few days off",
        "going to the coast",
        "redoing the garden",
        "moving to a bigger place",
        "learning to cook Thai food",
        "getting a dog",
    ],
    "place": [
        "the mountains",
        "the beach",
        "Chicago",
        "my hometown",
        "the lake",
        "Mexico",
        "Canada",
        "a little town up north",
        "Florida",
        "Italy",
    ],
    "time_unit": ["week", "month", "year", "summer", "weekend"],
    "goal": [
        "run a half marathon",
        "save up for a car",
        "read more books",
        "learn to play the piano",
        "finish my degree",
        "fix up the garden",
        "get back in shape",
        "visit my {relative} more",
    ],
    "pet": ["dog", "cat", "puppy", "old cat", "rabbit", "parrot", "two cats"],
    "pet_pred": [
        "keeps me company in the evenings",
        "woke me up early again {past_time}",
        "has been learning some new tricks",
        "loves the snow",
        "is getting pretty old now",
        "chewed up one of my shoes {past_time}",
        "follows me everywhere around the house",
    ],
    "dish": [
        "pasta",
        "a big pot of chili",
        "tacos",
        "a roast chicken",
        "curry",
        "soup",
        "stir fry",
        "lasagna",
        "fish and rice",
        "pancakes",
    ],
    "cuisine": ["Thai", "Mexican", "Italian", "Korean", "Indian", "Greek", "Vietnamese", "Ethiopian"],
    "clock": ["six", "seven", "half past six", "eight", "a quarter to seven"],
    "breakfast": ["coffee and toast", "some cereal", "eggs", "a quick coffee", "oatmeal", "a smoothie"],
    "evening_activity": [
        "watch a show with my {relative}",
        "go for a walk",
        "read for a bit",
        "cook dinner",
        "call my {relative}",
        "play some music",
        "work on {hobby}",
    ],
    "night_clock": ["ten", "eleven", "half past ten", "eleven thirty"],
    "chore": [
        "cooking",
        "doing the dishes",
        "cleaning the house",
        "taking a shower",
        "going to the store",
        "doing laundry",
        "answering emails",
        "getting dressed",
    ],
    "guilt_object": [
        "things that happened years ago",
        "not calling my {relative} more",
        "how I treated people",
        "every little mistake at work",
        "not being a better parent",
        "letting everyone down",
        "the way things turned out",
    ],
    "focus_task": [
        "my work",
        "a book",
        "a TV show",
        "what people are saying",
        "simple tasks",
        "paperwork",
        "conversations",
        "the news",
    ],
    "accomplishment": [
        "how I handled things at work",
        "my {relative}",
        "finishing that course",
        "how far I have come",
        "the garden I planted",
        "getting back into {hobby}",
    ],
    "decline": ["usually say no", "make up excuses", "just stay home", "cancel at the last minute"],
}

# -- everyday topics: told positively, or negatively tinted at higher severity -------------
_NEUTRAL: dict[str, dict[str, list[str]]] = {
    "work": {
        "pos": [
            "Things at work have been {work_good} {lately}",
            "The team at work is great",
            "Our office moved to a new building {past_time}",
            "Work has been {work_good} {lately}",
            "I work as {job} {work_place}",
            "We just started a new project at work, and it's {project_adj}",
            "{coworker} {coworker_pred}",
            "I usually work from home on Fridays",
            "I got a small raise at work {past_time}",
            "I've been at the same job for about six years now",
            "My shift starts at {clock} most mornings",
        ],
        "neg": [
            "Work has been {work_bad} {lately}",
            "I don't really like my job anymore",
            "I've been calling in sick more than I should",
            "I keep falling behind at work",
            "My boss isn't happy with me {nowadays}",
            "I dread going to work {freq_any}",
            "I'm not sure I can keep doing this job",
        ],
    },
    "family": {
        "pos": [
            "The whole family got together {past_time}",
            "Our kids love {hobby}",
            "We're having a barbecue {future_time}",
            "My {relative} {family_pos}",
            "We had a big family dinner {past_time}",
            "I'm going to visit my {relative} {future_time}",
            "My {relative} and I talk on the phone most days",
            "The kids have been keeping us busy with school stuff",
            "My family is pretty close, actually",
        ],
        "neg": [
            "I haven't talked to my {relative} in a while",
            "I don't really see my family much anymore",
            "My {relative} and I have been arguing {freq_any}",
            "I keep avoiding calls from my {relative}",
            "Nobody in my family really understands me",
        ],
    },
    "weather": {
        "pos": [
            "The garden looks great after all the rain",
            "Spring came early this year",
            "The days are getting longer, which is nice",
            "The weather has been {weather_adj} {lately}",
            "It rained all {day_part} {past_time}",
            "It's supposed to be sunny this weekend",
            "I like it when it gets a bit cooler in the evening",
            "We finally got some snow {past_time}",
            "I love this time of year, with the {season} coming",
        ],
        "neg": [
            "The grey weather doesn't help much",
            "I haven't been outside enough to notice the weather",
            "It's been dark and cold, and I just stay in",
            "I don't really care what the weather is like",
        ],
    },
    "hobbies": {
        "pos": [
            "{hobby} is a great way to unwind",
            "Our {club} meets every Thursday",
            "I {enjoy} {hobby} {when}",
            "{hobby} helps me relax after a long day",
            "I've been trying to get better at {hobby}",
            "I joined a {club} {past_time}",
            "My {relative} got me into {hobby} a few years ago",
            "I spent most of Saturday {hobby}, which was nice",
        ],
        "neg": [
            "I used to do a lot of {hobby}, but not so much now",
            "I signed up for a {club}, but I haven't gone in weeks",
            "I don't really have hobbies anymore",
        ],
    },
    "plans": {
        "pos": [
            "We're going to {place} {future_time}",
            "There's a concert in town {future_time} that we want to see",
            "Next {time_unit} I'm {plan_ing}",
            "I'm thinking about {plan_ing}",
            "We're planning a trip to {place} in the {season}",
            "I want to {goal} this year",
            "My {relative} and I are {plan_ing} {future_time}",
        ],
        "neg": [
            "I don't really have any plans right now",
            "I'm not sure what I'm going to do next {time_unit}",
            "I can't really think that far ahead",
            "I don't see much point in making plans",
            "I wanted to {goal}, but I don't think it's going to happen",
        ],
    },
    "pets": {
        "pos": [
            "The dog loves going to the park",
            "Our {pet} {pet_pred}",
            "My {pet} {pet_pred}",
            "We got a {pet} {past_time}",
            "I take the dog for a walk every {day_part}",
        ],
        "neg": [
            "My {pet} is the only reason I get up some mornings",
            "I don't even take the dog out as much as I should",
        ],
    },
    "food": {
        "pos": [
            "There's a great {cuisine} place near us",
            "We had {dish} for dinner {past_time}",
            "I made {dish} for dinner {past_time}",
            "We tried a new {cuisine} place {past_time}",
            "I've been cooking more at home {lately}",
            "My {relative} makes the best {dish}",
        ],
        "neg": ["I mostly just order takeout now", "I haven't cooked a real meal in a long time"],
    },
    "routine": {
        "pos": [
            "Mornings are usually pretty calm at our place",
            "The bus gets me to work in twenty minutes",
            "I usually get up around {clock} and have {breakfast}",
            "I take the bus to work most days",
            "In the evenings I {evening_activity}",
            "On Sundays I usually {evening_activity}",
        ],
        "neg": [
            "Most days I just stay at home",
            "I don't leave the house much these days",
            "I just watch TV until late most nights",
            "My days all feel the same {nowadays}",
        ],
    },
}

# -- symptom topics: "ok" at score 0, "neg" from score 1, "severe" added at score 3 --------
_SYMPTOM: dict[str, dict[str, list[str]]] = {
    "interest": {
        "ok": [
            "I still really {enjoy} {hobby}",
            "I've been getting into {hobby} again {lately}",
            "I look forward to {hobby} every week",
            "I'm excited about {plan_ing}",
        ],
        "neg": [
            "I don't enjoy {hobby} {as_much}",
            "I can't be bothered with {hobby} {nowadays}",
            "{hobby} just feels {deg} pointless to me {nowadays}",
            "I've lost {lost_share} interest in {hobby}",
            "Things I used to love just don't feel fun {freq}",
            "My friends invite me out, but I {decline} {freq}",
            "{freq_start}, I don't really feel like doing anything",
            "I have no motivation for {hobby} {nowadays}",
        ],
        "severe": [
            "Nothing interests me anymore",
            "I can't remember the last time I enjoyed anything",
            "I stopped {hobby} completely, and I don't miss it",
            "I don't care about anything anymore",
        ],
    },
    "mood": {
        "ok": [
            "I've been in a pretty good mood {lately}",
            "I feel pretty positive about things right now",
            "Overall I'm happy with how things are going",
            "Things have been looking up {lately}",
        ],
        "neg": [
            "I feel {deg} down {freq}",
            "I've been feeling {deg} sad {lately}",
            "I get {deg} low in the evenings {freq}",
            "I end up crying {freq}",
            "Everything feels {deg} heavy {nowadays}",
            "I feel {deg} hopeless about the future",
            "It's hard to feel good about anything {freq}",
            "I feel {deg} depressed {freq}",
        ],
        "severe": [
            "I feel empty almost all the time",
            "I don't think things will ever get better",
            "I feel completely hopeless about everything",
            "There's nothing to look forward to anymore",
        ],
    },
    "sleep_insomnia": {
        "ok": [
            "I've been sleeping pretty well {lately}",
            "I usually get a good eight hours",
            "I go to bed around {night_clock} and sleep through the night",
        ],
        "neg": [
            "I can't fall asleep until {late_clock} {freq}",
            "I wake up at {wake_clock} and can't get back to sleep {freq}",
            "I've been having {amount} trouble sleeping {lately}",
            "My sleep has been {deg} bad {lately}",
            "I lie awake thinking about everything {freq}",
            "I toss and turn half the night {freq}",
        ],
        "severe": [
            "I haven't slept properly in weeks",
            "Some nights I don't sleep at all",
            "I'm awake all night and exhausted all day",
        ],
    },
    "sleep_over": {
        "ok": [
            "I've been sleeping pretty well {lately}",
            "I usually get a good eight hours",
            "I go to bed around {night_clock} and sleep through the night",
        ],
        "neg": [
            "I've been sleeping {too_much} {lately}",
            "I sleep {bed_hours} hours and still feel tired",
            "I stay in bed until noon {freq}",
            "I oversleep and miss things {freq}",
            "I nap in the afternoons {freq}",
            "I can't seem to get out of bed in the morning {nowadays}",
        ],
        "severe": ["I sleep most of the day and still want more", "I barely leave my bed on weekends"],
    },
    "energy": {
        "ok": [
            "I've had plenty of energy {lately}",
            "I feel pretty rested most days",
            "I go for a run after work and still feel fine",
            "I've got enough energy to get through the day",
        ],
        "neg": [
            "I feel {deg} tired {freq}",
            "I've been {deg} worn out {lately}",
            "I just don't have the energy for {chore} {freq}",
            "Even small things like {chore} wear me out",
            "I'm {deg} exhausted by the afternoon {freq}",
            "I have to lie down after work {freq}",
            "I feel drained {freq}",
        ],
        "severe": [
            "I'm exhausted all the time, no matter what I do",
            "I barely have the energy to get out of bed",
            "I'm too tired to do anything at all",
        ],
    },
    "appetite_less": {
        "ok": ["I've been eating normally", "I cook a proper dinner most nights", "My appetite is fine"],
        "neg": [
            "{freq_start}, I don't feel like eating",
            "I skip meals {freq}",
            "I've lost {weight_amount} {lately}",
            "Food just doesn't taste like anything {nowadays}",
            "I forget to eat {freq}",
            "My appetite has been {deg} poor {lately}",
        ],
        "severe": ["I can barely eat anything", "I haven't had a proper meal in days"],
    },
    "appetite_more": {
        "ok": ["I've been eating normally", "I cook a proper dinner most nights", "My appetite is fine"],
        "neg": [
            "I've been eating {too_much} {lately}",
            "I snack all evening {freq}",
            "I eat when I'm bored or upset {freq}",
            "I've put on {weight_amount} {lately}",
            "I keep eating junk food even when I'm not hungry",
            "I overeat {freq}",
        ],
        "severe": ["I can't stop eating, even when I feel sick", "I eat all day long just to feel something"],
    },
    "self_worth": {
        "ok": [
            "I feel pretty good about myself {nowadays}",
            "I'm proud of {accomplishment}",
            "I think I'm doing a decent job at work",
            "I'm happy with the person I am",
        ],
        "neg": [
            "I feel like a failure {freq}",
            "I feel {deg} guilty about {guilt_object}",
            "I keep thinking I've let my {relative} down",
            "I feel {deg} useless {freq}",
            "I blame myself for {guilt_object}",
            "I feel like I'm not good enough {freq}",
            "I'm {deg} disappointed in myself {nowadays}",
        ],
        "severe": ["I'm not good at anything", "I've ruined everything", "I'm a complete failure"],
    },
    "concentration": {
        "ok": [
            "I can focus on my work without much trouble",
            "I finished a whole book {past_time}",
            "I'm pretty sharp at work these days",
        ],
        "neg": [
            "I struggle to focus on {focus_task} {freq}",
            "I read the same page over and over {freq}",
            "My mind keeps wandering {freq}",
            "I've been {deg} forgetful {lately}",
            "I lose track of what people are saying {freq}",
            "It's {deg} hard to concentrate on {focus_task}",
            "Making simple decisions is hard for me {freq}",
        ],
        "severe": ["I can't concentrate on anything at all", "My head is foggy all the time"],
    },
    "psychomotor_slow": {
        "ok": ["I've been feeling pretty steady and calm", "I get things done at a normal pace"],
        "neg": [
            "Everything feels {deg} slow {nowadays}",
            "People tell me I talk {deg} slowly",
            "It takes me forever to get ready in the morning",
            "I move like I'm walking through mud {freq}",
            "I feel {deg} sluggish {freq}",
            "I'm slow at everything {nowadays}",
        ],
        "severe": ["I can barely move some days", "Even talking feels like too much effort"],
    },
    "psychomotor_restless": {
        "ok": ["I've been feeling pretty steady and calm", "I get things done at a normal pace"],
        "neg": [
            "I find it hard to sit still {freq}",
            "I feel {deg} restless {nowadays}",
            "I keep pacing around the apartment {freq}",
            "I'm {deg} fidgety {nowadays}",
            "I feel {deg} on edge {freq}",
            "I'm fiddling with my hands {freq}",
        ],
        "severe": ["I'm so restless I can't stay in one place", "I pace around all night"],
    },
}

# -- glue ----------------------------------------------------------------------------------
_OPENERS = [
    "Well, ",
    "I mean, ",
    "Honestly, ",
    "To be honest, ",
    "You know, ",
    "So, ",
    "Yeah, ",
    "Um, ",
    "Hmm, ",
    "I'd say ",
    "I think ",
    "Actually, ",
    "Let me think, ",
    "Oh, ",
]
_UNCERTAIN_OPENERS = [
    "I don't know, ",
    "I guess ",
    "I'm not sure, ",
    "Maybe ",
    "I don't know, maybe ",
    "I can't really say, but ",
]
_TAILS = [
    ", I guess",
    ", you know",
    ", I suppose",
    ", to be honest",
    ", I think",
    ", really",
    ", if that makes sense",
    ", more or less",
    ", anyway",
]
_FOLLOW_NEG = [
    "and it's been getting worse",
    "and I don't know why",
    "but I try not to think about it",
    "and it makes everything harder",
    "and I'm not sure what to do about it",
    "even on good days",
    "which isn't like me at all",
    "and it's starting to affect my work",
    "and I hate it",
    "and nobody really notices",
    "and I can't seem to shake it",
]
_FOLLOW_POS = [
    "and I'm happy about that",
    "which is nice",
    "so that's been good",
    "and I'm looking forward to it",
    "and it keeps me busy",
    "so I can't complain",
    "which I really needed",
]
_FOLLOW_NEUTRAL = [
    "so we'll see",
    "and that's about it",
    "nothing too exciting",
    "which is pretty normal for me",
]
_FREQ_ANY = ["sometimes", "a lot", "more than usual", "every now and then"]

_CONTRACTIONS = {
    # "it's been" before "it's": the regex tries the alternatives in this order
    "it's been": "it has been",
    "that's been": "that has been",
    "don't": "do not",
    "can't": "cannot",
    "i've": "I have",
    "i'm": "I am",
    "it's": "it is",
    "haven't": "have not",
    "doesn't": "does not",
    "didn't": "did not",
    "isn't": "is not",
    "i'd": "I would",
    "won't": "will not",
    "that's": "that is",
    "we're": "we are",
    "i'll": "I will",
    "wasn't": "was not",
    "there's": "there is",
    "we'll": "we will",
}
_CONTRACTION_RE = re.compile(r"\b(" + "|".join(re.escape(k) for k in _CONTRACTIONS) + r")\b", re.IGNORECASE)
_SLOT_RE = re.compile(r"\{(\w+)\}")

# which way the two-sided symptoms go, per person: P(first variant)
_SIDES = {
    "sleep": ("sleep_insomnia", "sleep_over", 0.7),
    "appetite": ("appetite_less", "appetite_more", 0.65),
    "psychomotor": ("psychomotor_slow", "psychomotor_restless", 0.6),
}


@dataclass
class _Persona:
    """One participant's habits of speech, drawn once."""

    rng: np.random.Generator
    keep_share: float
    disclosure: float
    verbosity: float
    hedge_rate: float
    tail_rate: float
    contraction_rate: float
    _choices: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)

    def _personal(self, key: str, options: list[str]) -> tuple[list[str], np.ndarray]:
        """This person's subset of ``options`` and their preference weights (drawn on first use)."""
        if key not in self._choices:
            keep = self.rng.random(len(options)) < self.keep_share
            if keep.sum() < min(2, len(options)):
                keep[self.rng.choice(len(options), size=min(2, len(options)), replace=False)] = True
            kept = [o for o, k in zip(options, keep, strict=True) if k]
            self._choices[key] = (kept, self.rng.dirichlet(np.full(len(kept), 1.5)))
        return self._choices[key]

    def pick(self, key: str, options: list[str]) -> str:
        kept, weights = self._personal(key, options)
        return kept[int(self.rng.choice(len(kept), p=weights))]


def _fill(template: str, persona: _Persona, level: int, depth: int = 0) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _LEVELLED:
            lvl = min(max(level, 1), 3)
            value = persona.pick(f"{name}@{lvl}", _LEVELLED[name][lvl])
        elif name == "freq_any":
            value = persona.pick(name, _FREQ_ANY)
        else:
            value = persona.pick(name, _SLOTS[name])
        return _fill(value, persona, level, depth + 1) if "{" in value and depth < 3 else value

    return _SLOT_RE.sub(replace, template)


def _expand_contractions(text: str, persona: _Persona) -> str:
    def replace(match: re.Match[str]) -> str:
        if persona.rng.random() < persona.contraction_rate:
            return match.group(0)
        full = _CONTRACTIONS[match.group(0).lower()]
        return full[0].upper() + full[1:] if match.group(0)[0].isupper() else full

    return _CONTRACTION_RE.sub(replace, text)


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+,", ",", text)
    text = re.sub(r",\s*,", ",", text)
    text = re.sub(r"\bi\b", "I", text)
    text = text[0].upper() + text[1:]
    return text.rstrip(",. ") + "."


def _check_items(items: np.ndarray) -> np.ndarray:
    scores = np.asarray(items).reshape(-1)
    if scores.shape != (len(PHQ8_ITEMS),) or not np.all((scores >= 0) & (scores <= 3)):
        raise ValueError(f"items must be {len(PHQ8_ITEMS)} scores in 0..3, got {items!r}")
    return scores.astype(np.int64)


def participant_sentences(items: np.ndarray, rng: np.random.Generator) -> Iterator[str]:
    """Endless interview answers of one synthetic participant with these PHQ-8 item scores.

    Deterministic for a given rng state; the rng is drawn from lazily, sentence by sentence.
    """
    scores = _check_items(items)
    total = float(scores.sum())
    persona = _Persona(
        rng=rng,
        keep_share=float(rng.uniform(0.5, 0.85)),
        disclosure=float(np.exp(rng.normal(0.0, 0.35))),
        verbosity=float(rng.uniform(0.15, 0.55))
        * (1.0 - 0.3 * (scores[PHQ8_ITEMS.index("energy")] + scores[PHQ8_ITEMS.index("psychomotor")]) / 6.0),
        hedge_rate=float(rng.uniform(0.1, 0.4)),
        tail_rate=float(rng.uniform(0.03, 0.2)),
        contraction_rate=float(rng.uniform(0.3, 0.98)),
    )
    tint = float(np.clip(0.04 + 0.51 * total / 24.0 + rng.normal(0.0, 0.05), 0.0, 0.9))
    uncertain = float(np.clip(0.1 + 0.6 * total / 24.0, 0.0, 0.8))
    topic_of_item = []
    for name in PHQ8_ITEMS:
        if name in _SIDES:
            first, second, p_first = _SIDES[name]
            topic_of_item.append(first if rng.random() < p_first else second)
        else:
            topic_of_item.append(name)
    neutral_topics = list(_NEUTRAL)
    neutral_weights = rng.dirichlet(np.full(len(neutral_topics), 2.0))
    # how readily each symptom comes up: a personal factor, one per item, and some not told at all
    item_disclosure = np.exp(rng.normal(0.0, 0.5, len(PHQ8_ITEMS))) * np.where(
        rng.random(len(PHQ8_ITEMS)) < UNTOLD_CHANCE, 0.1, 1.0
    )
    symptom_weights = persona.disclosure * item_disclosure * np.array([SYMPTOM_WEIGHT[s] for s in scores])
    weights = np.concatenate([[1.0], symptom_weights])
    weights /= weights.sum()

    while True:
        choice = int(rng.choice(len(weights), p=weights))
        if choice == 0:
            topic = neutral_topics[int(rng.choice(len(neutral_topics), p=neutral_weights))]
            negative = rng.random() < tint
            tone = "neg" if negative else "pos"
            template = persona.pick(f"{topic}:{tone}", _NEUTRAL[topic][tone])
            level = int(np.clip(round(total / 8.0), 1, 3))
            follows = _FOLLOW_NEG if negative else _FOLLOW_POS + _FOLLOW_NEUTRAL
        else:
            topic = topic_of_item[choice - 1]
            level = int(scores[choice - 1])
            if level == 0 and rng.random() < EVERYDAY_COMPLAINT:  # anyone is a bit tired now and then
                level = 1
            if level == 0:
                template, follows, negative = (
                    persona.pick(f"{topic}:ok", _SYMPTOM[topic]["ok"]),
                    _FOLLOW_POS,
                    False,
                )
            else:
                pool = _SYMPTOM[topic]["neg"] + (_SYMPTOM[topic]["severe"] if level == 3 else [])
                template, follows, negative = (
                    persona.pick(f"{topic}:neg{level == 3}", pool),
                    _FOLLOW_NEG,
                    True,
                )
        for _ in range(8):  # redraw the glue until the sentence has a fitting length
            sentence = _fill(template, persona, level)
            if "," not in sentence and rng.random() < persona.verbosity:
                sentence += ", " + persona.pick(f"follow:{negative}", follows)
            opened = rng.random() < persona.hedge_rate
            if opened:
                pool = _UNCERTAIN_OPENERS if rng.random() < uncertain else _OPENERS
                opener = persona.pick(f"opener:{pool is _OPENERS}", pool)
                first = sentence[:2]
                keep_case = first.startswith("I ") or first.startswith("I'")
                sentence = opener + (sentence if keep_case else sentence[0].lower() + sentence[1:])
            if not opened and rng.random() < persona.tail_rate:
                sentence += persona.pick("tail", _TAILS)
            sentence = _tidy(_expand_contractions(sentence, persona))
            if MIN_WORDS <= len(sentence.split()) <= MAX_WORDS:
                yield sentence
                break
