"""Telepathy tasks with decidable attributes: an authored entity table expanded with category defaults.

Each entity line is `name[/alias...] | category | true facts; ... | false facts; ...`, each fact a predicate of
"it" ("is grey", "has a trunk", "lives in water"). A category adds its defaults (an animal is alive and not a
plant; an object is man-made and not alive), and an animal's class (mammal, bird, fish, insect, reptile,
amphibian) makes the other classes false. Anything neither listed nor implied is not in the table: the rules
user answers it with "cannot answer" (Maybe), never a guess.

The split is by entity: the six entities the original test split held stay there, and every fifth other
entity (in table order) joins them. `python -m rltrain.envs.taskgen.telepathy` rewrites the data file.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rltrain.envs.judged import DATA_DIR, render_data_file

CLASSES = ("mammal", "bird", "fish", "insect", "reptile", "amphibian")
NOT_LIVING = ["is alive", "is a living thing", "is an animal", "is a plant", "is a person", "breathes"]
CATEGORY_TRUE = {
    "animal": ["is an animal", "is alive", "is a living thing", "breathes"],
    "plant": ["is a plant", "is alive", "is a living thing"],
    "person": ["is a person", "is a human", "is a real person"],
    "place": ["is a place"],
    "object": ["is an object", "is man-made"],
    "vehicle": ["is an object", "is man-made", "is a vehicle", "can move"],
    "food": ["is food", "is edible", "can be eaten"],
    "astronomical object": ["is in space"],
    "concept": ["is an idea"],
    "natural phenomenon": ["happens in nature"],
}
CATEGORY_FALSE = {
    "animal": ["is a plant", "is a person", "is a human", "is a place", "is man-made", "is a machine", "is an idea"],
    "plant": ["is an animal", "is a person", "is a place", "is man-made", "is a machine", "can fly", "has legs"],
    "person": ["is an animal", "is a plant", "is a place", "is man-made", "is a machine", "is food", "is fictional"],
    "place": ["is a person", "is a human", "is food", "is edible", "is a vehicle", *NOT_LIVING],
    "object": ["is a person", "is a human", "is a place", "is food", "is edible", *NOT_LIVING],
    "vehicle": ["is a person", "is a human", "is a place", "is food", "is edible", *NOT_LIVING],
    "food": ["is a person", "is a human", "is a place", "is a vehicle", "is a machine", "is alive", "is an animal"],
    "astronomical object": ["is man-made", "is food", "is a vehicle", "is a place on earth", *NOT_LIVING],
    "concept": ["is an object", "is man-made", "is food", "is a place", "can be touched", "is a vehicle", *NOT_LIVING],
    "natural phenomenon": ["is man-made", "is an object", "is food", "is a place", "is a vehicle", *NOT_LIVING],
}
ORIGINAL_TEST = ("Penguin", "Marie Curie", "Venice", "Telescope", "Chocolate", "Rainbow")

ENTITIES = """
Elephant/African elephant/Asian elephant | animal | is a mammal; is large; is grey; has a trunk; has tusks; is a herbivore; lives on land; lives in Africa | can fly; lives in water; is a carnivore; is small; is a pet
Dolphin/bottlenose dolphin | animal | is a mammal; lives in water; lives in the sea; can swim; is intelligent; has fins; is grey | lives on land; can fly; has fur; has legs; is a pet
Honeybee/bee/honey bee | animal | is an insect; can fly; makes honey; has wings; can sting; has six legs; is small; lives in a hive | is large; lives in water; is a pet
Owl | animal | is a bird; can fly; has feathers; has wings; is nocturnal; hunts mice; lays eggs; is a carnivore | lives in water; is a herbivore; has fur
Shark | animal | is a fish; lives in water; lives in the sea; can swim; has fins; has sharp teeth; is a carnivore; is a predator | lives on land; can fly; has fur; has legs; is a pet
Albert Einstein/Einstein | person | was a scientist; was a physicist; was a man; won a Nobel Prize; developed the theory of relativity; was born in Germany | is alive; was a woman; was a painter; was a king; was an athlete
Cleopatra | person | was a woman; was a queen; was a ruler of Egypt; lived in ancient times | is alive; was a man; was a scientist; was a painter; was born in Europe
William Shakespeare/Shakespeare | person | was a writer; was a playwright; was a man; was English; wrote Hamlet; wrote poems | is alive; was a woman; was a scientist; was a king; was American
Leonardo da Vinci/da Vinci/Leonardo | person | was a painter; was an artist; was an inventor; was a man; was Italian; painted the Mona Lisa | is alive; was a woman; was a king; was American
Eiffel Tower | place | is man-made; is a building; is a tower; is in Paris; is in France; is in Europe; is made of iron; is tall | is natural; is in Asia; is in America; is underwater
Mount Everest/Everest | place | is a mountain; is natural; is in Asia; is in the Himalayas; is tall; is covered in snow | is man-made; is in Europe; is in America; is a building; is underwater
Sahara/Sahara Desert | place | is a desert; is natural; is in Africa; is hot; is dry; is large; has sand | is man-made; is in Europe; is in Asia; is cold; is a building
Great Wall of China/Great Wall | place | is man-made; is a wall; is in China; is in Asia; is long; is ancient; is made of stone | is natural; is in Europe; is in Africa; is underwater
Amazon River/Amazon | place | is a river; is natural; is in South America; is in Brazil; is long; has water | is man-made; is in Europe; is in Asia; is a building; is a desert
Bicycle/bike | vehicle | has two wheels; has pedals; has a chain; is powered by a person; has handlebars | has an engine; can fly; uses fuel; has four wheels; is electronic
Piano | object | is a musical instrument; has keys; makes music; has strings; is heavy; is made of wood | is electronic; can move; is worn; is small; is a weapon
Umbrella | object | protects from rain; can be folded; has a handle; is carried; is small | is electronic; has wheels; is heavy; is a musical instrument
Smartphone/phone/mobile phone/cell phone | object | is electronic; has a screen; makes calls; uses a battery; is small; fits in a pocket; can take photos | is heavy; has wheels; is made of wood; is a musical instrument; is worn
Candle | object | gives light; burns; is made of wax; has a wick; can melt; is small | is electronic; has wheels; uses a battery; is heavy; is a musical instrument
Hammer | object | is a tool; has a handle; is made of metal; hits nails; is used for building | is electronic; uses a battery; has wheels; is a musical instrument; is soft
Banana | food | is a fruit; is yellow; grows on trees; is sweet; has a peel; is long; is a plant product | is man-made; is a vegetable; is meat; is red; is salty; is round
Pizza | food | is man-made; is baked; has cheese; has dough; is round; is Italian; is savory | is a fruit; is sweet; is a drink; grows on trees; is a vegetable
Moon/the Moon | astronomical object | is round; orbits the Earth; has craters; is natural; reflects sunlight; is visible at night | is a star; is a planet; gives its own light; has an atmosphere; is made of cheese
Democracy | concept | is a system of government; involves voting; involves elections; means rule by the people | is natural; is a religion; is a sport; is a science
Penguin/emperor penguin | animal | is a bird; has feathers; has wings; can swim; lays eggs; lives in cold places; is black and white; eats fish | can fly; has fur; lives in the desert; is a herbivore; is a pet
Marie Curie/Curie | person | was a scientist; was a woman; won a Nobel Prize; studied radioactivity; was a physicist; was a chemist; was born in Poland | is alive; was a man; was a painter; was a queen; was American
Venice | place | is a city; is in Italy; is in Europe; has canals; has gondolas; is man-made; is near the sea | is in Asia; is in America; is a country; is a desert; is a mountain
Telescope | object | is used to see far away; has lenses; is used to look at stars; is long; is used in astronomy | is edible; is a musical instrument; is worn; is soft; has wheels
Chocolate | food | is sweet; is made from cocoa; is brown; is man-made; can melt; is a dessert | is a fruit; is a vegetable; is salty; is meat; is a drink; grows on trees
Rainbow | natural phenomenon | is colourful; appears after rain; has seven colours; is made of light; is in the sky; is shaped like an arc | can be touched; is solid; makes a sound; is dark; lasts forever
Lion | animal | is a mammal; is a carnivore; is a predator; has fur; has a mane; lives in Africa; is a big cat; is large; lives on land | can fly; lives in water; is a herbivore; is a pet; is small
Tiger | animal | is a mammal; is a carnivore; is a predator; has fur; has stripes; lives in Asia; is a big cat; is large; is orange | can fly; lives in water; is a herbivore; is a pet; lives in Africa
Giraffe | animal | is a mammal; is a herbivore; has a long neck; has spots; lives in Africa; is tall; eats leaves; is large | can fly; lives in water; is a carnivore; is a pet; is small
Zebra | animal | is a mammal; is a herbivore; has stripes; is black and white; lives in Africa; has hooves; eats grass | can fly; lives in water; is a carnivore; is a pet; has horns
Kangaroo | animal | is a mammal; lives in Australia; can jump; has a pouch; is a herbivore; has a long tail; is a marsupial | can fly; lives in water; is a carnivore; lives in Africa; is a pet
Koala | animal | is a mammal; lives in Australia; eats eucalyptus; climbs trees; has fur; is a marsupial; is grey; is a herbivore | can fly; lives in water; is a carnivore; is large; is a pet
Panda/giant panda | animal | is a mammal; lives in China; eats bamboo; is black and white; has fur; is a bear; is large | can fly; lives in water; lives in Africa; is a pet; is small
Polar bear | animal | is a mammal; is a bear; is white; lives in the Arctic; is a carnivore; has fur; can swim; is large | can fly; lives in Africa; is a herbivore; is a pet; is small
Camel | animal | is a mammal; has a hump; lives in the desert; is a herbivore; can carry people; has long legs | can fly; lives in water; is a carnivore; is small; has stripes
Horse | animal | is a mammal; has hooves; has a mane; can be ridden; is a herbivore; eats grass; is domesticated; is large | can fly; lives in water; is a carnivore; has horns; is small
Cow | animal | is a mammal; gives milk; has hooves; eats grass; is a herbivore; is a farm animal; is domesticated; is large | can fly; lives in water; is a carnivore; is small; is a pet
Pig | animal | is a mammal; is a farm animal; has a snout; is pink; is domesticated; has hooves | can fly; lives in water; has horns; has stripes; has feathers
Sheep | animal | is a mammal; has wool; is a farm animal; eats grass; is a herbivore; is domesticated; has hooves | can fly; lives in water; is a carnivore; has stripes; has a trunk
Goat | animal | is a mammal; has horns; has hooves; is a farm animal; gives milk; is a herbivore; can climb | can fly; lives in water; is a carnivore; has stripes; has a trunk
Dog/puppy | animal | is a mammal; is a pet; has fur; can bark; is domesticated; has four legs; has a tail | can fly; lives in water; has feathers; lays eggs; has a trunk
Cat/kitten | animal | is a mammal; is a pet; has fur; has whiskers; can purr; is domesticated; has a tail; catches mice; is small | can fly; lives in water; has feathers; lays eggs; is large
Rabbit/bunny | animal | is a mammal; has long ears; can hop; has fur; is a herbivore; eats carrots; is small | can fly; lives in water; is a carnivore; has feathers; lays eggs; is large
Mouse | animal | is a mammal; is a rodent; is small; has a tail; has whiskers; has fur | can fly; lives in water; is large; has feathers; lays eggs
Squirrel | animal | is a mammal; is a rodent; climbs trees; has a bushy tail; eats nuts; is small; has fur | can fly; lives in water; is large; has feathers; lays eggs
Bat | animal | is a mammal; can fly; has wings; is nocturnal; hangs upside down; uses echolocation; has fur | has feathers; lays eggs; lives in water; is large; is a pet
Whale/blue whale | animal | is a mammal; lives in water; lives in the sea; can swim; is huge; is large; breathes air; has fins | lives on land; can fly; has legs; has fur; is small
Seal | animal | is a mammal; lives in the sea; can swim; has flippers; eats fish; has whiskers | can fly; lives in the desert; has feathers; lays eggs; is a herbivore
Otter | animal | is a mammal; can swim; has fur; eats fish; lives near rivers; has whiskers; is small | can fly; lives in the desert; has feathers; lays eggs; is a herbivore
Bear/brown bear | animal | is a mammal; has fur; is large; hibernates; is an omnivore; has claws; lives in forests | can fly; lives in water; has feathers; lays eggs; is small; is a pet
Wolf | animal | is a mammal; is a carnivore; lives in packs; can howl; has fur; is a predator; is wild | can fly; lives in water; is a herbivore; has feathers; lays eggs
Fox | animal | is a mammal; is red; has a bushy tail; has fur; is a predator; is wild; is small | can fly; lives in water; has feathers; lays eggs; is large
Deer | animal | is a mammal; has antlers; is a herbivore; lives in forests; has hooves; is wild | can fly; lives in water; is a carnivore; has feathers; lays eggs
Hippopotamus/hippo | animal | is a mammal; lives in Africa; is large; is heavy; lives near rivers; is a herbivore; is grey | can fly; has fur; has feathers; lays eggs; is small; is a pet
Rhinoceros/rhino | animal | is a mammal; has a horn; lives in Africa; is large; is heavy; is a herbivore; is grey; has thick skin | can fly; has fur; has feathers; lays eggs; is small; has a trunk
Gorilla | animal | is a mammal; is a primate; is large; is strong; lives in Africa; is an ape; has fur | can fly; lives in water; has feathers; lays eggs; has a tail
Monkey | animal | is a mammal; is a primate; climbs trees; has a tail; eats bananas; has fur | can fly; lives in water; has feathers; lays eggs; has a trunk
Hedgehog | animal | is a mammal; has spines; is small; is nocturnal; can roll into a ball; eats insects | can fly; lives in water; has feathers; lays eggs; is large
Beaver | animal | is a mammal; is a rodent; builds dams; has a flat tail; can swim; chews wood; has fur | can fly; has feathers; lays eggs; lives in the desert; is large
Eagle/bald eagle | animal | is a bird; can fly; has feathers; has a beak; is a predator; is a carnivore; has talons; lays eggs | lives in water; is a herbivore; has fur; is a pet; is small
Parrot | animal | is a bird; can fly; can talk; is colourful; has a beak; has feathers; lays eggs; is a pet | lives in water; has fur; is large; is a carnivore
Chicken/hen | animal | is a bird; is a farm animal; lays eggs; has feathers; has a beak; is domesticated | lives in water; has fur; is large; is wild; has a trunk
Ostrich | animal | is a bird; is large; has long legs; can run fast; lays eggs; has feathers; lives in Africa | can fly; lives in water; has fur; is small; is a pet
Flamingo | animal | is a bird; is pink; has long legs; stands on one leg; can fly; has feathers; lays eggs | has fur; is a carnivore; lives in the desert; is a pet
Swan | animal | is a bird; is white; can swim; can fly; has a long neck; has feathers; lays eggs | has fur; is a carnivore; lives in the desert; is small
Crow | animal | is a bird; is black; can fly; is intelligent; has feathers; has a beak; lays eggs | has fur; lives in water; is large; is colourful
Peacock | animal | is a bird; is colourful; has a long tail; has feathers; lays eggs; has a beak | has fur; lives in water; is a carnivore; is small
Hummingbird | animal | is a bird; is small; can fly; can hover; drinks nectar; has a beak; has feathers | has fur; lives in water; is large; is a carnivore
Woodpecker | animal | is a bird; can fly; pecks trees; has a beak; has feathers; lays eggs; lives in forests | has fur; lives in water; is large
Duck | animal | is a bird; can swim; can fly; has a beak; can quack; has feathers; lays eggs | has fur; is large; is a carnivore; lives in the desert
Goldfish | animal | is a fish; lives in water; can swim; is orange; is a pet; is small; has fins | lives on land; can fly; has fur; has legs; is large
Salmon | animal | is a fish; lives in water; can swim; swims upstream; is pink inside; has fins; is eaten by people | lives on land; can fly; has fur; has legs; is a pet
Clownfish | animal | is a fish; lives in water; lives in the sea; is orange; has stripes; lives in coral reefs; is small; has fins | lives on land; can fly; has fur; has legs; is large
Seahorse | animal | is a fish; lives in water; lives in the sea; is small; has a curly tail | lives on land; can fly; has fur; has legs; is large
Octopus | animal | lives in water; lives in the sea; has eight arms; is intelligent; can change colour; has tentacles; can swim | lives on land; can fly; has fur; has bones; is a mammal; is a fish
Jellyfish | animal | lives in water; lives in the sea; can sting; has tentacles; is transparent; can swim | lives on land; can fly; has fur; has bones; has a brain; is a mammal; is a fish
Crab | animal | lives in the sea; has claws; has a shell; walks sideways; has ten legs | can fly; has fur; has feathers; is a mammal; is a fish; is large
Snail | animal | has a shell; is slow; is small; leaves a trail of slime | can fly; has legs; has fur; has feathers; is fast; is a mammal
Butterfly | animal | is an insect; can fly; has wings; is colourful; was a caterpillar; has six legs; drinks nectar | has fur; lives in water; is large; can sting; is a pet
Ant | animal | is an insect; is small; lives in colonies; has six legs; is strong for its size; can bite | can fly; has fur; lives in water; is large; is a pet
Mosquito | animal | is an insect; can fly; bites people; has wings; is small; drinks blood; has six legs | has fur; lives in water; is large; is a pet; is a herbivore
Ladybug/ladybird | animal | is an insect; is red; has spots; can fly; is small; has wings; has six legs | has fur; lives in water; is large; can sting; is a pet
Grasshopper | animal | is an insect; is green; can jump; has six legs; is small; eats grass | has fur; lives in water; is large; can sting; is a pet
Spider | animal | has eight legs; spins webs; is a predator; is small | can fly; has fur; has wings; is a mammal; is an insect; is large
Snake | animal | is a reptile; has no legs; has scales; can bite; is cold-blooded; lays eggs | can fly; has fur; has legs; has feathers; is a mammal
Crocodile | animal | is a reptile; has scales; has sharp teeth; lives near rivers; is a predator; is large; lays eggs; can swim | can fly; has fur; has feathers; is a herbivore; is a pet
Turtle | animal | is a reptile; has a shell; is slow; lays eggs; can swim | can fly; has fur; has feathers; is fast; is a mammal
Chameleon | animal | is a reptile; can change colour; has a long tongue; eats insects; is small; lays eggs | can fly; has fur; has feathers; is large; is a mammal
Lizard | animal | is a reptile; has scales; has a tail; is cold-blooded; is small | can fly; has fur; has feathers; is large; is a mammal
Frog | animal | is an amphibian; can jump; is green; can swim; lays eggs; eats insects; was a tadpole | can fly; has fur; has feathers; is large; is a mammal
Penguin chick | animal | is a bird; has feathers; is young; is small | can fly; has fur; lives in the desert; is a mammal
Salamander | animal | is an amphibian; has a tail; has four legs; is small; can swim | can fly; has fur; has feathers; is large; is a mammal
Isaac Newton/Newton | person | was a scientist; was a physicist; was a man; was English; described gravity; was a mathematician | is alive; was a woman; was a painter; was a king; was American
Charles Darwin/Darwin | person | was a scientist; was a man; was English; studied evolution; sailed on the Beagle; was a naturalist | is alive; was a woman; was a painter; was a king; was American
Galileo Galilei/Galileo | person | was a scientist; was an astronomer; was a man; was Italian; used a telescope | is alive; was a woman; was a painter; was a king; was American
Nikola Tesla/Tesla | person | was an inventor; was a man; was an engineer; worked with electricity | is alive; was a woman; was a painter; was a king; was a writer
Thomas Edison/Edison | person | was an inventor; was a man; was American; worked with electricity; invented the phonograph | is alive; was a woman; was a painter; was a king; was English
Ada Lovelace/Lovelace | person | was a woman; was a mathematician; was English; wrote about computers | is alive; was a man; was a painter; was a queen; was American
Pablo Picasso/Picasso | person | was a painter; was an artist; was a man; was Spanish; painted Guernica | is alive; was a woman; was a scientist; was a king; was American
Vincent van Gogh/van Gogh | person | was a painter; was an artist; was a man; was Dutch; painted Sunflowers | is alive; was a woman; was a scientist; was a king; was American
Frida Kahlo/Kahlo | person | was a painter; was an artist; was a woman; was Mexican; painted self-portraits | is alive; was a man; was a scientist; was a queen; was American
Wolfgang Amadeus Mozart/Mozart | person | was a composer; was a musician; was a man; was Austrian; wrote symphonies; played the piano | is alive; was a woman; was a scientist; was a painter; was a king
Ludwig van Beethoven/Beethoven | person | was a composer; was a musician; was a man; was German; became deaf; wrote symphonies | is alive; was a woman; was a scientist; was a painter; was a king
Napoleon Bonaparte/Napoleon | person | was a man; was French; was an emperor; was a military leader; was a ruler of France | is alive; was a woman; was a scientist; was a painter; was American
Queen Victoria/Victoria | person | was a woman; was a queen; was British; was a ruler of the United Kingdom | is alive; was a man; was a scientist; was a painter; was American
Abraham Lincoln/Lincoln | person | was a man; was American; was a president; was a politician; ended slavery | is alive; was a woman; was a scientist; was a painter; was a king
George Washington/Washington | person | was a man; was American; was a president; was a general; was the first president of the United States | is alive; was a woman; was a scientist; was a painter; was a king
Mahatma Gandhi/Gandhi | person | was a man; was Indian; was a lawyer; led nonviolent protests; was a political leader | is alive; was a woman; was a scientist; was a painter; was a king
Nelson Mandela/Mandela | person | was a man; was South African; was a president; was in prison; won a Nobel Prize | is alive; was a woman; was a scientist; was a painter; was a king
Martin Luther King/Martin Luther King Jr | person | was a man; was American; was a civil rights leader; gave speeches; won a Nobel Prize; was a minister | is alive; was a woman; was a scientist; was a painter; was a president
Julius Caesar/Caesar | person | was a man; was Roman; was a general; was a dictator; lived in ancient times | is alive; was a woman; was a scientist; was a painter; was American
Joan of Arc | person | was a woman; was French; was a soldier; was a saint; lived in the Middle Ages | is alive; was a man; was a scientist; was a painter; was a queen
Christopher Columbus/Columbus | person | was a man; was an explorer; was a sailor; sailed to America; was Italian | is alive; was a woman; was a scientist; was a painter; was a king
Neil Armstrong/Armstrong | person | was a man; was American; was an astronaut; walked on the Moon; was a pilot | is alive; was a woman; was a painter; was a king; was a writer
Amelia Earhart/Earhart | person | was a woman; was American; was a pilot; flew across the Atlantic; disappeared | is alive; was a man; was a painter; was a queen; was a writer
Jane Austen/Austen | person | was a woman; was English; was a writer; wrote novels; wrote Pride and Prejudice | is alive; was a man; was a scientist; was a painter; was a queen
Charles Dickens/Dickens | person | was a man; was English; was a writer; wrote novels; wrote Oliver Twist | is alive; was a woman; was a scientist; was a painter; was a king
Homer | person | was a man; was Greek; was a poet; wrote the Odyssey; lived in ancient times | is alive; was a woman; was a scientist; was a painter; was a king
Aristotle | person | was a man; was Greek; was a philosopher; taught Alexander the Great; lived in ancient times | is alive; was a woman; was a painter; was a king; was Roman
Socrates | person | was a man; was Greek; was a philosopher; lived in Athens; lived in ancient times | is alive; was a woman; was a painter; was a king; was Roman
Confucius | person | was a man; was Chinese; was a philosopher; was a teacher; lived in ancient times | is alive; was a woman; was a painter; was a king; was Greek
Florence Nightingale/Nightingale | person | was a woman; was British; was a nurse; worked in hospitals | is alive; was a man; was a painter; was a queen; was a writer
Rosa Parks/Parks | person | was a woman; was American; was a civil rights activist; refused to give up her bus seat | is alive; was a man; was a painter; was a queen; was a scientist
Alexander the Great | person | was a man; was a king; was a military leader; was Macedonian; lived in ancient times | is alive; was a woman; was a painter; was a scientist; was Roman
Genghis Khan | person | was a man; was Mongolian; was an emperor; was a military leader; rode horses | is alive; was a woman; was a painter; was a scientist; was European
Tutankhamun/King Tut | person | was a man; was a pharaoh; was a king; was Egyptian; died young; lived in ancient times | is alive; was a woman; was a painter; was a scientist; was Roman
Marco Polo | person | was a man; was an explorer; was Italian; travelled to China; was a merchant | is alive; was a woman; was a painter; was a scientist; was a king
Stonehenge | place | is man-made; is ancient; is made of stone; is in England; is in Europe; is a monument | is natural; is in Asia; is a building; is a city; is underwater
Statue of Liberty | place | is man-made; is a statue; is in New York; is in the United States; is green; holds a torch | is natural; is in Europe; is in Asia; is a building; is underwater
Colosseum | place | is man-made; is ancient; is in Rome; is in Italy; is in Europe; is an amphitheatre; is made of stone | is natural; is in Asia; is in America; is underwater; is new
Taj Mahal | place | is man-made; is in India; is in Asia; is made of marble; is white; is a tomb; is a building | is natural; is in Europe; is in America; is underwater
Pyramids of Giza/Great Pyramid | place | is man-made; is in Egypt; is in Africa; is ancient; is made of stone; is a tomb | is natural; is in Europe; is in Asia; is underwater; is new
Grand Canyon | place | is natural; is a canyon; is in the United States; is in America; is deep; was carved by a river | is man-made; is in Europe; is in Asia; is a building; is underwater
Niagara Falls | place | is natural; is a waterfall; is between Canada and the United States; has water; is in America | is man-made; is in Europe; is in Asia; is a building; is a desert
Great Barrier Reef | place | is natural; is a coral reef; is underwater; is in Australia; is in the sea; is alive with fish | is man-made; is in Europe; is in Asia; is a building; is a desert
Antarctica | place | is a continent; is cold; is covered in ice; is natural; has penguins; is in the south | is man-made; is hot; is a city; is a country; is a desert with sand
Paris | place | is a city; is in France; is in Europe; is the capital of France; has the Eiffel Tower; is man-made | is in Asia; is in America; is a country; is a mountain; is natural
Tokyo | place | is a city; is in Japan; is in Asia; is the capital of Japan; is crowded; is man-made | is in Europe; is in America; is a country; is a mountain; is natural
New York City/New York/NYC | place | is a city; is in the United States; is in America; has skyscrapers; is crowded; is man-made | is in Europe; is in Asia; is a country; is a capital; is natural
London | place | is a city; is in England; is in Europe; is the capital of the United Kingdom; has the Thames; is man-made | is in Asia; is in America; is a country; is a mountain; is natural
Rome | place | is a city; is in Italy; is in Europe; is the capital of Italy; is ancient; is man-made | is in Asia; is in America; is a country; is a mountain; is natural
Cairo | place | is a city; is in Egypt; is in Africa; is the capital of Egypt; is on the Nile; is man-made | is in Europe; is in Asia; is a country; is a mountain; is natural
Sydney | place | is a city; is in Australia; has an opera house; is near the sea; is man-made | is in Europe; is in Asia; is a country; is a capital; is natural
Iceland | place | is a country; is an island; is in Europe; is cold; has volcanoes; has geysers | is in Asia; is a city; is hot; is in Africa; is man-made
Japan | place | is a country; is made of islands; is in Asia; has Mount Fuji; has earthquakes | is in Europe; is a city; is in Africa; is in America; is man-made
Brazil | place | is a country; is in South America; is large; has the Amazon; speaks Portuguese | is in Europe; is a city; is in Asia; is an island; is man-made
Canada | place | is a country; is in North America; is large; is cold; has maple trees | is in Europe; is a city; is in Asia; is an island; is man-made
Nile River/Nile | place | is a river; is natural; is in Africa; is long; flows through Egypt; has water | is man-made; is in Europe; is in Asia; is a building; is a desert
Pacific Ocean/Pacific | place | is an ocean; is natural; is huge; has salt water; is deep; is the largest ocean | is man-made; is a river; is a building; is a desert; is small
Mount Fuji/Fuji | place | is a mountain; is a volcano; is natural; is in Japan; is in Asia; has snow on top | is man-made; is in Europe; is in America; is a building; is underwater
Alps | place | are mountains; is natural; is in Europe; has snow; is a place for skiing | is man-made; is in Asia; is in America; is a building; is a desert
Hawaii | place | is made of islands; is in the Pacific; has volcanoes; has beaches; is a state of the United States | is in Europe; is in Asia; is cold; is a city; is man-made
Big Ben | place | is man-made; is a clock tower; is in London; is in England; is in Europe; has a bell | is natural; is in Asia; is in America; is underwater; is a bridge
Golden Gate Bridge | place | is man-made; is a bridge; is in San Francisco; is in the United States; is red | is natural; is in Europe; is in Asia; is a tower; is underwater
Machu Picchu | place | is man-made; is ancient; is in Peru; is in South America; is in the mountains; was built by the Inca | is natural; is in Europe; is in Asia; is underwater; is new
Car/automobile | vehicle | has four wheels; has an engine; uses fuel; has a steering wheel; drives on roads; has doors | can fly; has pedals; floats; has wings; is powered by a person
Airplane/plane/aeroplane | vehicle | can fly; has wings; has an engine; carries passengers; is large; uses fuel | floats; has pedals; drives on roads only; is powered by a person; is small
Helicopter | vehicle | can fly; has rotors; has an engine; can hover; uses fuel | has wings; floats; has pedals; is powered by a person; drives on roads
Train | vehicle | runs on rails; has carriages; carries passengers; is long; has an engine | can fly; floats; has pedals; is powered by a person; is small
Boat | vehicle | floats; travels on water; can carry people | can fly; runs on rails; has wings; has four wheels; drives on roads
Submarine | vehicle | travels underwater; floats; has an engine; has a periscope; is large | can fly; runs on rails; has wings; has four wheels; has pedals
Bus | vehicle | has wheels; carries passengers; drives on roads; is large; has an engine; has many seats | can fly; floats; runs on rails; has pedals; is small
Motorcycle/motorbike | vehicle | has two wheels; has an engine; uses fuel; drives on roads; has handlebars | can fly; floats; has pedals; has four wheels; has doors
Skateboard | vehicle | has four wheels; is powered by a person; is small; is made of wood; is used for tricks | has an engine; can fly; floats; uses fuel; has pedals
Rocket | vehicle | can fly; goes to space; uses fuel; is tall; has an engine | floats; has pedals; drives on roads; is powered by a person; has wheels
Hot air balloon | vehicle | can fly; has a basket; uses fire; floats in the air; carries people | has an engine; has wings; drives on roads; has pedals; floats on water
Tractor | vehicle | has an engine; is used on farms; has large wheels; pulls things; drives on fields | can fly; floats; has pedals; is powered by a person; has wings
Guitar | object | is a musical instrument; has strings; makes music; is made of wood; is played with fingers | is electronic; has keys; has wheels; is edible; is worn
Violin | object | is a musical instrument; has strings; makes music; is played with a bow; is made of wood; is small | is electronic; has keys; has wheels; is edible; is worn
Drum | object | is a musical instrument; makes music; is hit with sticks; is round; makes loud sounds | has strings; has keys; is electronic; is edible; is worn
Trumpet | object | is a musical instrument; makes music; is made of brass; is blown; has valves | has strings; has keys; is electronic; is edible; is worn
Flute | object | is a musical instrument; makes music; is blown; has holes; is long; is made of metal | has strings; has keys on a keyboard; is electronic; is edible; is worn
Clock | object | tells the time; has hands; has numbers; hangs on a wall; ticks | is edible; is worn; is a musical instrument; has wheels; is soft
Watch/wristwatch | object | tells the time; is worn; is worn on the wrist; is small; has a strap | is edible; is a musical instrument; has wheels; is heavy; is soft
Book | object | has pages; has words; is made of paper; is read; has a cover | is electronic; is edible; has wheels; is a musical instrument; makes music
Pencil | object | is used for writing; is made of wood; has lead; is small; can be sharpened; is long | is electronic; is edible; has wheels; is heavy; is a musical instrument
Scissors | object | is used for cutting; has two blades; is made of metal; has handles; is sharp | is electronic; is edible; has wheels; is soft; is a musical instrument
Key | object | opens locks; is made of metal; is small; fits in a pocket | is electronic; is edible; has wheels; is heavy; is soft
Chair | object | is furniture; is used for sitting; has legs; has a back; is made of wood | is electronic; is edible; has wheels; is worn; makes music
Table | object | is furniture; has legs; has a flat top; is made of wood; is used for eating | is electronic; is edible; is worn; makes music; is small
Bed | object | is furniture; is used for sleeping; has a mattress; has pillows; is large; is soft | is electronic; is edible; is worn; makes music; is small
Lamp | object | gives light; uses electricity; has a bulb; has a switch; sits on a table | is edible; is worn; makes music; has wheels; is soft
Refrigerator/fridge | object | keeps food cold; uses electricity; is large; is in the kitchen; has a door; is heavy | is edible; is worn; makes music; has wheels; is small
Television/TV | object | has a screen; uses electricity; is electronic; shows pictures; makes sounds | is edible; is worn; has wheels; is soft; is made of wood
Computer/PC | object | is electronic; has a keyboard; has a screen; uses electricity; runs programs | is edible; is worn; has wheels; is soft; is made of wood
Camera | object | takes photos; has a lens; is electronic; has a button | is edible; has wheels; is soft; is a musical instrument; is made of wood
Mirror | object | reflects light; is made of glass; is flat; shows your reflection; can break | is electronic; is edible; has wheels; is soft; makes music
Toothbrush | object | is used for cleaning teeth; has bristles; has a handle; is small; is used every day | is edible; has wheels; is heavy; is a musical instrument; uses fuel
Spoon | object | is used for eating; is made of metal; is small; is in the kitchen; has a handle | is electronic; is edible; has wheels; is sharp; is a musical instrument
Knife | object | is used for cutting; is sharp; has a blade; has a handle; is in the kitchen; is made of metal | is electronic; is edible; has wheels; is soft; is a musical instrument
Cup/mug | object | holds drinks; has a handle; is small; is in the kitchen | is electronic; is edible; has wheels; is sharp; is a musical instrument
Shoe | object | is worn; is worn on the feet; has laces; comes in pairs | is electronic; is edible; has wheels; is a musical instrument; is made of glass
Hat | object | is worn; is worn on the head; protects from the sun; is made of fabric | is electronic; is edible; has wheels; is a musical instrument; is made of glass
Glasses/spectacles | object | is worn; is worn on the face; has lenses; helps people see; has a frame | is electronic; is edible; has wheels; is a musical instrument; is heavy
Backpack/rucksack | object | is worn; is worn on the back; carries things; has straps; has pockets; has a zipper | is electronic; is edible; has wheels; is a musical instrument; is made of glass
Ladder | object | has rungs; is used for climbing; is tall; is made of metal; leans on walls | is electronic; is edible; has wheels; is a musical instrument; is soft
Kite | object | can fly; has a string; is flown in the wind; is made of paper; is colourful | is electronic; is edible; has wheels; has an engine; is heavy
Balloon | object | is filled with air; can pop; is made of rubber; is colourful; is light; floats | is electronic; is edible; has wheels; has an engine; is heavy
Ball | object | is round; bounces; is used in sports; can roll; is thrown | is electronic; is edible; has wheels; has an engine; is sharp
Sword | object | is a weapon; has a blade; is sharp; is made of metal; is long | is electronic; is edible; has wheels; is soft; is a musical instrument
Compass | object | points north; has a needle; is used for navigation; is small; has a magnet | is edible; has wheels; is heavy; is a musical instrument; is soft
Light bulb/bulb | object | gives light; uses electricity; is made of glass; can break; is small | is edible; has wheels; is heavy; is a musical instrument; is soft
Microscope | object | is used in science; has lenses; makes small things look bigger; is used in laboratories | is edible; is worn; has wheels; is a musical instrument; is soft
Pillow | object | is soft; is used for sleeping; is filled with feathers; is on a bed | is electronic; is edible; has wheels; is sharp; is heavy
Broom | object | is used for cleaning; has a long handle; has bristles; sweeps floors | is electronic; is edible; has wheels; is a musical instrument; is sharp
Apple | food | is a fruit; grows on trees; is round; is sweet; can be red; has seeds; is crunchy | is man-made; is a vegetable; is meat; is salty; is baked
Orange | food | is a fruit; is orange; grows on trees; is round; has a peel; is juicy; is citrus | is man-made; is a vegetable; is meat; is salty; is baked
Strawberry | food | is a fruit; is red; is sweet; has seeds on the outside; is small; grows on plants | is man-made; is a vegetable; is meat; is salty; grows on trees
Watermelon | food | is a fruit; is large; is green outside; is red inside; is juicy; has seeds; is sweet | is man-made; is a vegetable; is meat; is salty; grows on trees
Lemon | food | is a fruit; is yellow; is sour; is citrus; grows on trees; has a peel | is man-made; is a vegetable; is meat; is sweet; is baked
Grape | food | is a fruit; is small; grows on vines; is used to make wine; is round; is sweet | is man-made; is a vegetable; is meat; is salty; grows on trees
Pineapple | food | is a fruit; is tropical; has spiky skin; is yellow inside; is sweet; is juicy | is man-made; is a vegetable; is meat; is salty; grows on trees
Coconut | food | is a fruit; grows on palm trees; has a hard shell; has water inside; is tropical; is brown | is man-made; is meat; is salty; is soft; is a vegetable
Carrot | food | is a vegetable; is orange; grows underground; is long; is crunchy; is eaten by rabbits | is man-made; is a fruit; is meat; is sweet like candy; grows on trees
Potato | food | is a vegetable; grows underground; can be fried; is used for chips; has skin | is man-made; is a fruit; is meat; is sweet; grows on trees
Tomato | food | is red; is round; is juicy; has seeds; is used in salads; is used in sauces | is man-made; is meat; is sweet; grows on trees; is baked
Onion | food | is a vegetable; has layers; grows underground; makes you cry; is round | is man-made; is a fruit; is meat; is sweet; grows on trees
Broccoli | food | is a vegetable; is green; looks like a small tree; is healthy | is man-made; is a fruit; is meat; is sweet; grows underground
Corn/maize | food | is yellow; grows on a cob; is a grain; is used for popcorn | is man-made; is meat; is salty; grows underground; is a fruit
Rice | food | is a grain; is small; is white; is cooked in water; is eaten in Asia | is man-made; is meat; is a fruit; grows on trees; is sweet
Bread | food | is man-made; is baked; is made from flour; has a crust; is sliced | is a fruit; is a vegetable; is meat; grows on trees; is a drink
Cheese | food | is made from milk; is man-made; is a dairy product; can be yellow; is salty | is a fruit; is a vegetable; is meat; grows on trees; is a drink
Egg | food | comes from chickens; has a shell; has a yolk; can be boiled; is oval | is man-made; is a fruit; is a vegetable; grows on trees; is a drink
Honey | food | is sweet; is made by bees; is sticky; is golden; is thick | is man-made; is a fruit; is a vegetable; is meat; is salty
Ice cream | food | is cold; is sweet; is a dessert; is man-made; can melt; is made from milk | is a fruit; is a vegetable; is meat; is hot; is salty
Cake | food | is sweet; is baked; is a dessert; is man-made; is eaten at birthdays | is a fruit; is a vegetable; is meat; is salty; is a drink
Hamburger/burger | food | is man-made; has a bun; has meat; is fast food; is savory | is a fruit; is a vegetable; is sweet; is a drink; is a dessert
Sushi | food | is Japanese; has rice; has fish; is man-made; is rolled | is a fruit; is sweet; is a drink; is a dessert; is baked
Spaghetti/pasta | food | is Italian; is long; is made from flour; is boiled; is man-made; is eaten with sauce | is a fruit; is sweet; is a drink; is a dessert; grows on trees
Popcorn | food | is made from corn; pops when heated; is eaten at the cinema; is a snack; is light | is a fruit; is meat; is a drink; grows on trees; is cold
Coffee | food | is a drink; is hot; has caffeine; is brown; is made from beans | is a fruit; is meat; is sweet; is a dessert; is solid
Tea | food | is a drink; is hot; is made from leaves; has caffeine | is a fruit; is meat; is a dessert; is solid; is salty
Milk | food | is a drink; is white; comes from cows; is a dairy product | is a fruit; is meat; is man-made; is solid; is hot
Soup | food | is hot; is liquid; is eaten with a spoon; is savory; is man-made | is a fruit; is a dessert; is solid; is cold; grows on trees
Oak/oak tree | plant | is a tree; has leaves; has acorns; is tall; has wood; lives for a long time | is a flower; is edible; grows in water; is small; is a vegetable
Rose | plant | is a flower; has thorns; is red; smells nice; has petals; is a symbol of love | is a tree; is tall; grows in water; is a vegetable; is edible
Sunflower | plant | is a flower; is yellow; is tall; follows the sun; has seeds; has petals | is a tree; has thorns; grows in water; is small; is a vegetable
Cactus | plant | has spines; lives in the desert; stores water; is green; needs little water | is a tree; grows in water; has leaves; is a flower; is soft
Bamboo | plant | is a grass; grows fast; is tall; is hollow; is green; is eaten by pandas | is a flower; has thorns; grows in water; is small; is a tree
Water lily/lily pad | plant | grows in water; floats; is a flower; has large leaves; lives in ponds | is a tree; has thorns; lives in the desert; is tall; has spines
Mushroom | plant | grows in forests; has a cap; grows in damp places; has a stem | is a tree; is a flower; has leaves; has thorns; grows in the desert
Tulip | plant | is a flower; has petals; grows from a bulb; is colourful; is from the Netherlands | is a tree; has thorns; grows in water; is tall; has spines
Palm tree/palm | plant | is a tree; is tall; grows in hot places; has large leaves; grows coconuts | is a flower; has thorns; grows in water; is small; has acorns
Pine tree/pine | plant | is a tree; is evergreen; has needles; has cones; is tall | is a flower; has thorns; grows in water; is small; has acorns
Venus flytrap | plant | eats insects; has traps; is small; is green; is carnivorous | is a tree; is tall; grows in water; is a vegetable; is edible
Sun/the Sun | astronomical object | is a star; is hot; gives its own light; is huge; is at the centre of the solar system; is bright | is a planet; is cold; orbits the Earth; is small; is a moon
Mars | astronomical object | is a planet; is red; orbits the Sun; has two moons; is called the red planet | is a star; gives its own light; is the largest planet; has rings; is hot
Saturn | astronomical object | is a planet; has rings; orbits the Sun; is a gas giant; is large | is a star; gives its own light; is red; is small; is the closest planet to the Sun
Jupiter | astronomical object | is a planet; is the largest planet; is a gas giant; orbits the Sun; has a red spot | is a star; gives its own light; is small; is red; is the closest planet to the Sun
Comet | astronomical object | has a tail; orbits the Sun; is made of ice; is made of dust | is a star; is a planet; gives its own light; is alive; is a moon
Milky Way | astronomical object | is a galaxy; has billions of stars; is huge; has a spiral shape; contains the solar system | is a planet; is a star; is a moon; is small; is alive
Black hole | astronomical object | has strong gravity; traps light; is invisible; is dense; forms from a dead star | is a planet; gives its own light; is a moon; is small in mass; is alive
Freedom | concept | means having choices; is valued by people; is an abstract idea; is a right | can be touched; is a place; is a sport; is a science; is a religion
Love | concept | is a feeling; is an emotion; is an abstract idea; is felt between people | can be touched; is a place; is a sport; is a science; is a religion
Time | concept | is measured in seconds; is measured by clocks; moves forward; is an abstract idea | can be touched; is a place; is a sport; is a feeling; is an emotion
Justice | concept | is about fairness; is related to law; is an abstract idea; is a value | can be touched; is a place; is a sport; is a feeling; is an emotion
Mathematics/math/maths | concept | is a subject; is a science; uses numbers; is taught in school; is an abstract idea | can be touched; is a place; is a sport; is a feeling; is an emotion
Music | concept | is made of sounds; is an art; can be played; can be heard | can be touched; is a place; is a sport; is a science; is a feeling
Friendship | concept | is a relationship; is between people; is an abstract idea; is valued by people | can be touched; is a place; is a sport; is a science; is an emotion
Happiness | concept | is a feeling; is an emotion; is an abstract idea; is wanted by people | can be touched; is a place; is a sport; is a science; is a relationship
Lightning | natural phenomenon | happens during storms; is bright; is electricity; is in the sky; is hot; is fast | can be touched; is solid; lasts forever; is cold; is colourful
Earthquake | natural phenomenon | shakes the ground; can destroy buildings; happens underground; is dangerous; is sudden | is in the sky; is bright; is colourful; lasts forever; is made of light
Tornado | natural phenomenon | is a storm; is made of wind; spins; is dangerous; is in the sky | is solid; is colourful; lasts forever; is made of light; happens underground
Snow | natural phenomenon | is cold; is white; falls from the sky; is frozen water; melts; happens in winter | is hot; is colourful; is dark; lasts forever; happens underground
Volcano eruption/eruption | natural phenomenon | is hot; involves lava; comes from a mountain; is dangerous; involves ash | is cold; is colourful; lasts forever; is made of light; falls from the sky
Aurora/northern lights/aurora borealis | natural phenomenon | is colourful; is in the sky; is made of light; happens near the poles; happens at night | can be touched; is solid; makes a sound; is hot; happens underground
Tsunami | natural phenomenon | is a giant wave; happens in the sea; is dangerous; is caused by earthquakes; is made of water | is in the sky; is colourful; lasts forever; is made of light; is solid
Fog | natural phenomenon | is made of water droplets; makes it hard to see; is grey; is near the ground; is cold | is solid; is colourful; lasts forever; is made of light; is hot
Thunder | natural phenomenon | makes a sound; is loud; happens during storms; comes after lightning | can be touched; is solid; is colourful; is made of light; lasts forever
Eclipse/solar eclipse | natural phenomenon | happens when the Moon blocks the Sun; is in the sky; makes it dark; is rare | can be touched; is solid; makes a sound; lasts forever; happens underground
"""


def slug(name: str) -> str:
    """The task id's tail: lower case, words joined by '-' ("Great Wall of China" -> "great-wall-of-china")."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def entity_task(line: str) -> dict[str, Any]:
    """One authored table line as a task: the original fields plus `facts` {true: [...], false: [...]}."""
    names, category, true, false = (part.strip() for part in line.split("|"))
    name, *aliases = (n.strip() for n in names.split("/"))
    own_true = [f"it {p.strip()}" for p in true.split(";") if p.strip()]
    own_false = [f"it {p.strip()}" for p in false.split(";") if p.strip()]
    classes = [c for c in CLASSES if any(p.endswith(f" a {c}") or p.endswith(f" an {c}") for p in own_true)]
    class_false = [f"it is an {c}" if c[0] in "aeiou" else f"it is a {c}" for c in CLASSES if c not in classes]
    defaults_true = [f"it {p}" for p in CATEGORY_TRUE[category]]
    defaults_false = [f"it {p}" for p in CATEGORY_FALSE[category]] + class_false
    facts_true = list(dict.fromkeys(defaults_true + own_true))
    facts_false = [p for p in dict.fromkeys(defaults_false + own_false) if p not in facts_true]
    return {"id": f"telepathy-{slug(name)}", "target_entity": name, "category": category, "aliases": aliases,
            "attributes": [p.strip() for p in true.split(";") if p.strip()],
            "facts": {"true": facts_true, "false": facts_false}}


def build() -> dict[str, list[dict[str, Any]]]:
    """Train and test tasks, split by entity (see the module docstring)."""
    tasks = [entity_task(line) for line in ENTITIES.strip().splitlines() if line.strip()]
    ids = [t["id"] for t in tasks]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate telepathy entities: {sorted(duplicates)}")
    others = [t for t in tasks if t["target_entity"] not in ORIGINAL_TEST]
    test_ids = {t["id"] for t in tasks if t["target_entity"] in ORIGINAL_TEST} | {t["id"] for t in others[4::5]}
    return {"train": [t for t in tasks if t["id"] not in test_ids], "test": [t for t in tasks if t["id"] in test_ids]}


def main() -> None:
    data = build()
    (DATA_DIR / "telepathy.json").write_text(render_data_file(data, ("train", "test")))
    print(json.dumps({split: len(rows) for split, rows in data.items()}))


if __name__ == "__main__":
    main()
