"""Texts spoken in the mini benchmark and in the pre-training pool (written for this project).

Three disjoint sets: the keywords (like Speech Commands), the benchmark sentences (speaker task and the speech in
the tagging mixtures), and the pool vocabulary, from which the pool's word sequences are drawn. No keyword and no
benchmark sentence appears in the pool (checked by ``pool.overlap_report``).
"""
from __future__ import annotations

KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one"]

SENTENCES = [
    "The kettle is singing on the stove.", "Please close the window before you leave.",
    "A small boat drifted past the harbour.", "We planted tomatoes along the fence.",
    "The library opens at nine tomorrow.", "Her bicycle has a squeaky wheel.",
    "Rain tapped softly against the glass.", "The train was late again this morning.",
    "Bring a warm coat for the evening walk.", "Two owls called across the valley.",
    "The bakery sold out of bread by noon.", "He painted the door a bright green.",
    "Our neighbour plays the trumpet at night.", "The map was folded in the glove box.",
    "A cold wind blew across the field.", "They counted the coins on the table.",
    "The museum shows old clocks and maps.", "Add a pinch of salt to the soup.",
    "The children built a fort of pillows.", "My phone battery died during lunch.",
    "Snow covered the roofs of the village.", "The teacher wrote the date on the board.",
    "A red kite floated above the hill.", "The soup needs a little more pepper.",
    "We waited an hour for the ferry.", "The cat slept on the warm laptop.",
    "Turn left after the old stone bridge.", "The market smells of fresh oranges.",
    "She fixed the lamp with a paper clip.", "The river rose after the storm.",
    "Lemons are cheaper at the corner shop.", "The choir practised in the cold hall.",
    "He forgot his keys on the bus.", "The garden gate creaks in the wind.",
    "A parcel arrived for the neighbours.", "The pilot announced a smooth landing.",
    "Fresh paint dries slowly in winter.", "The clock in the tower struck four.",
    "We shared a pot of mint tea.", "The puppy chewed the garden hose.",
    "Light the candles before the guests arrive.", "The engine coughed and then started.",
    "Her letter took three weeks to arrive.", "The lighthouse blinked through the fog.",
    "Pack the plates in old newspapers.", "A bee buzzed around the jam jar.",
    "The hikers rested by the waterfall.", "The printer jammed on the last page.",
]

POOL_WORDS = """
apple basket candle desert engine feather garden harbor island jacket kitchen ladder meadow needle orchard pocket
quarter river saddle tunnel umbrella valley window yellow anchor blanket carpet dragon elbow forest guitar hammer
iron jungle kernel lemon mirror nickel ocean pepper rabbit silver timber velvet wagon copper marble thunder lantern
pebble walnut cabin comet dolphin falcon glacier hollow ivory jasmine kettle lobster maple nectar oyster parrot
quiver rocket sailor tiger violet whistle almond bridge cotton dinner evening family golden happy little morning
number orange people quiet simple table under village winter travel summer spring autumn morning kindly slowly
quickly gently brightly softly always never often seldom perhaps maybe because after before during between behind
across inside outside beyond through toward around beneath above below near far early late open close begin finish
follow carry gather wander whisper listen gather polish borrow answer wonder remember imagine explore discover
""".split()
