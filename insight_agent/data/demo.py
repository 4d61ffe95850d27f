"""Seeded, deterministic demo data for an online lifestyle retailer.

The generator plants structure that the analytics layers are expected to recover:

* five behavioural customer segments that separate cleanly on RFM-style features;
* churn as a latent event: purchase intensity fades over the months before the churn date, so
  gaps grow and recent spend falls before a customer goes quiet (nothing is bought from the
  churn date on); some churners sit in every established segment, not only in "lapsing";
* co-purchase pairs inside an order (Apparel+Footwear, Home+Kitchen, Beauty+Accessories);
* campaign responses that depend on segment, campaign type and recency;
* reviews focused on one aspect each, with sentiment driven by the author's segment.

Everything is driven by one ``numpy.random.Generator`` seeded from :class:`DemoConfig`, and
nothing depends on the current date, so the same config always yields the same frames and
byte-identical CSV files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "ASPECTS",
    "SEGMENTS",
    "DemoConfig",
    "DemoFrames",
    "generate_frames",
    "write_demo",
]

SEGMENTS: tuple[str, ...] = (
    "loyal_high_spender",
    "bargain_hunter",
    "new_customer",
    "lapsing",
    "occasional",
)
ASPECTS: tuple[str, ...] = ("shipping", "quality", "price", "sizing", "support", "packaging")
SENTIMENTS: tuple[str, ...] = ("positive", "negative", "mixed")

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "name",
    "email",
    "phone",
    "signup_date",
    "age",
    "gender",
    "region",
    "country",
    "channel",
    "income",
)
ORDER_COLUMNS: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "order_date",
    "product",
    "category",
    "quantity",
    "unit_price",
)
REVIEW_COLUMNS: tuple[str, ...] = (
    "review_id",
    "customer_id",
    "date",
    "product",
    "category",
    "rating",
    "text",
)
CAMPAIGN_COLUMNS: tuple[str, ...] = ("customer_id", "campaign", "sent_date", "responded")
TRUTH_CUSTOMER_COLUMNS: tuple[str, ...] = ("customer_id", "segment", "churned", "churn_date")
TRUTH_REVIEW_COLUMNS: tuple[str, ...] = ("review_id", "aspect", "sentiment")

# Segment indices (positions in SEGMENTS).
_LOYAL, _BARGAIN, _NEW, _LAPSING, _OCCASIONAL = range(5)
_SEGMENT_SHARES = np.array([0.15, 0.25, 0.20, 0.20, 0.20])

# Purchase process per segment (the new_customer entries are unused: see _simulate_orders).
_MEAN_GAP_DAYS = np.array([30.0, 48.0, 60.0, 36.0, 150.0])
_CHURN_PROB = np.array([0.05, 0.10, 0.0, 0.95, 0.15])
_RATE_SHAPE = 12.0  # gamma shape of the per-customer rate multiplier (CV ~ 0.29)
_GAP_SHAPE = 6.0  # gamma shape of inter-purchase gaps in operational time (CV ~ 0.41)
# How long before the stop day the purchase rate starts to fade (min, max days) by segment;
# lapsers fade a little faster, other churners drift away over several months.
_DECLINE_DAYS = np.array(
    [[120.0, 270.0], [120.0, 270.0], [120.0, 270.0], [100.0, 220.0], [120.0, 270.0]]
)
_DECAY_FACTOR = 2.5  # the rate has decayed to exp(-2.5) ~ 8% of normal at the stop day
_CHURN_WINDOW_DAYS = 200  # churners outside the lapsing segment stop within this final stretch
_NEW_WINDOW_DAYS = 120
_MIN_DAYS = 365

# Lines per order: P(1), P(2), P(3), P(4) by segment.
_LINES_PROBS = np.array(
    [
        [0.50, 0.30, 0.13, 0.07],
        [0.66, 0.25, 0.07, 0.02],
        [0.66, 0.25, 0.07, 0.02],
        [0.66, 0.25, 0.07, 0.02],
        [0.66, 0.25, 0.07, 0.02],
    ]
)
_MAX_LINES = 4

_CATEGORIES: tuple[str, ...] = (
    "Apparel",
    "Footwear",
    "Accessories",
    "Beauty",
    "Home",
    "Kitchen",
    "Outdoor",
    "Electronics",
)
# Six products per category, ordered budget, budget, mid, mid, premium, premium.
_PRODUCTS: tuple[tuple[tuple[str, float], ...], ...] = (
    (
        ("Basic Cotton Tee", 12.99),
        ("Everyday Leggings", 19.99),
        ("Linen Shirt", 39.99),
        ("Slim Fit Chinos", 44.99),
        ("Merino Wool Jumper", 89.99),
        ("Waxed Cotton Jacket", 149.99),
    ),
    (
        ("Flip Flops", 12.99),
        ("Canvas Plimsolls", 24.99),
        ("Running Trainers", 69.99),
        ("Leather Loafers", 79.99),
        ("Suede Desert Boots", 119.99),
        ("Chelsea Boots", 139.99),
    ),
    (
        ("Knitted Beanie", 9.99),
        ("Canvas Tote Bag", 14.99),
        ("Silk Scarf", 34.99),
        ("Polarised Sunglasses", 49.99),
        ("Leather Weekend Bag", 169.99),
        ("Classic Steel Watch", 199.99),
    ),
    (
        ("Lip Balm Set", 7.99),
        ("Hand Cream", 9.99),
        ("Argan Hair Oil", 22.99),
        ("Vitamin C Serum", 24.99),
        ("Skincare Gift Set", 64.99),
        ("Luxury Eau de Parfum", 89.99),
    ),
    (
        ("Scented Candle", 12.99),
        ("Cotton Cushion Cover", 14.99),
        ("Chunky Throw Blanket", 39.99),
        ("Ceramic Table Lamp", 49.99),
        ("Linen Bedding Set", 129.99),
        ("Wool Rug", 189.99),
    ),
    (
        ("Bamboo Utensil Set", 11.99),
        ("Glass Storage Jars", 16.99),
        ("Non-Stick Frying Pan", 34.99),
        ("Chef's Knife", 44.99),
        ("Cast Iron Casserole", 119.99),
        ("Espresso Machine", 249.99),
    ),
    (
        ("Steel Water Bottle", 14.99),
        ("Head Torch", 19.99),
        ("Folding Camping Chair", 39.99),
        ("Hiking Daypack", 49.99),
        ("Waterproof Shell Jacket", 159.99),
        ("Two-Person Tent", 229.99),
    ),
    (
        ("Charging Cable", 9.99),
        ("Phone Stand", 14.99),
        ("Smart Plug Twin Pack", 29.99),
        ("Bluetooth Speaker", 49.99),
        ("Fitness Smartwatch", 179.99),
        ("Noise-Cancelling Headphones", 199.99),
    ),
)
_N_CAT = len(_CATEGORIES)
_PER_CAT = 6
_PRODUCT_NAMES: tuple[str, ...] = tuple(name for cat in _PRODUCTS for name, _ in cat)
_LIST_PRICES = np.array([price for cat in _PRODUCTS for _, price in cat])
_PRODUCT_CATEGORY = np.repeat(np.arange(_N_CAT), _PER_CAT)
_WEARABLE = np.array([c in ("Apparel", "Footwear") for c in _CATEGORIES])

# Planted co-purchase partners (-1: none). Later lines of an order pick the partner of the
# first line's category with probability _PARTNER_PROB.
_PARTNER = np.array([1, 0, 3, 2, 5, 4, 1, -1])
_PARTNER_PROB = 0.6

# Segment-flavoured Dirichlet concentration for category preferences.
_CATEGORY_ALPHA = np.array(
    [
        [1.3, 1.0, 1.1, 0.9, 0.9, 0.8, 0.6, 0.7],
        [1.1, 0.7, 0.7, 1.0, 1.0, 1.0, 0.4, 0.7],
        [1.3, 0.9, 0.8, 0.9, 0.6, 0.6, 0.5, 0.6],
        [0.9, 0.8, 0.6, 0.7, 0.8, 0.8, 0.8, 0.8],
        [0.7, 0.6, 0.6, 0.6, 0.9, 0.9, 1.0, 1.0],
    ]
)
# Price tier (budget, mid, premium) by segment.
_TIER_PROBS = np.array(
    [
        [0.03, 0.22, 0.75],
        [0.82, 0.16, 0.02],
        [0.25, 0.55, 0.20],
        [0.25, 0.50, 0.25],
        [0.12, 0.50, 0.38],
    ]
)
# Probability that a line has quantity > 1, and the discount regime by segment.
_MULTI_QTY_PROB = np.array([0.08, 0.30, 0.06, 0.07, 0.06])
_DISCOUNT_PROB = np.array([0.06, 0.65, 0.10, 0.10, 0.10])
_ANNUAL_PRICE_RISE = 0.04

_MONTH_SEASON = np.array([0.75, 0.70, 0.80, 0.80, 0.80, 0.80, 0.85, 0.80, 0.80, 0.85, 1.0, 1.0])

# Campaigns: (name, type, month, day, occurrence: 0 = latest fitting date, 1 = the one before).
_CAMPAIGNS: tuple[tuple[str, str, int, int, int], ...] = (
    ("Loyalty Rewards", "loyalty", 5, 1, 1),
    ("Summer Clearance", "sale", 7, 10, 1),
    ("Black Friday", "sale", 11, 28, 0),
    ("Holiday Gift Guide", "seasonal", 12, 4, 0),
    ("Spring Sale", "sale", 3, 14, 0),
    ("Back to School", "seasonal", 8, 18, 0),
)
_CAMPAIGN_BASE_RESPONSE = {
    "sale": np.array([0.12, 0.40, 0.14, 0.05, 0.09]),
    "seasonal": np.array([0.22, 0.13, 0.15, 0.04, 0.10]),
    "loyalty": np.array([0.45, 0.08, 0.07, 0.03, 0.07]),
}
_CAMPAIGN_REACH = 0.5

# Reviews: aspect mix by segment, then sentiment (positive, negative, mixed) by (segment, aspect).
_ANONYMOUS_SHARE = 0.15
_ASPECT_PROBS = np.array(
    [
        [0.12, 0.46, 0.08, 0.08, 0.12, 0.14],
        [0.10, 0.14, 0.50, 0.08, 0.08, 0.10],
        [0.10, 0.12, 0.07, 0.40, 0.05, 0.26],
        [0.42, 0.10, 0.08, 0.04, 0.32, 0.04],
        [0.18, 0.18, 0.16, 0.16, 0.16, 0.16],
    ]
)
_SENTIMENT_PROBS = np.array(
    [
        # loyal_high_spender
        [[0.75, 0.10, 0.15], [0.88, 0.04, 0.08], [0.60, 0.15, 0.25], [0.70, 0.10, 0.20],
         [0.75, 0.10, 0.15], [0.80, 0.05, 0.15]],
        # bargain_hunter
        [[0.50, 0.25, 0.25], [0.35, 0.25, 0.40], [0.65, 0.25, 0.10], [0.45, 0.25, 0.30],
         [0.45, 0.30, 0.25], [0.45, 0.25, 0.30]],
        # new_customer
        [[0.60, 0.20, 0.20], [0.55, 0.15, 0.30], [0.50, 0.20, 0.30], [0.15, 0.40, 0.45],
         [0.55, 0.20, 0.25], [0.80, 0.08, 0.12]],
        # lapsing
        [[0.05, 0.85, 0.10], [0.25, 0.45, 0.30], [0.20, 0.50, 0.30], [0.25, 0.45, 0.30],
         [0.05, 0.85, 0.10], [0.30, 0.40, 0.30]],
        # occasional
        [[0.40, 0.30, 0.30], [0.40, 0.30, 0.30], [0.40, 0.30, 0.30], [0.40, 0.30, 0.30],
         [0.40, 0.30, 0.30], [0.40, 0.30, 0.30]],
    ]
)  # fmt: skip

_FIRST_NAMES_F: tuple[str, ...] = (
    "Amelia", "Olivia", "Isla", "Ava", "Emily", "Sophie", "Grace", "Lily", "Chloe", "Ella",
    "Freya", "Evie", "Ruby", "Harriet", "Hannah", "Jessica", "Lucy", "Megan", "Alice", "Zara",
    "Priya", "Aisha", "Niamh", "Siobhan", "Claire", "Laura", "Rachel", "Sarah", "Katie", "Maya",
    "Leah", "Imogen", "Poppy", "Esme", "Nadia", "Elena", "Sofia", "Anna", "Julia", "Rosa",
)  # fmt: skip
_FIRST_NAMES_M: tuple[str, ...] = (
    "Oliver", "George", "Harry", "Jack", "Noah", "Charlie", "Thomas", "James", "William", "Oscar",
    "Leo", "Henry", "Alfie", "Joshua", "Daniel", "Samuel", "Adam", "Ryan", "Liam", "Connor",
    "Arjun", "Omar", "Callum", "Ewan", "Owen", "Rhys", "Dylan", "Matthew", "Luke", "Ben",
    "Max", "Finn", "Lucas", "Ethan", "Aaron", "Marco", "Tomas", "Felix", "Hugo", "Sean",
)  # fmt: skip
_LAST_NAMES: tuple[str, ...] = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Wood", "Jackson", "Clarke", "Khan", "Hughes", "Edwards", "Turner", "Hill", "Moore", "Cooper",
    "Ward", "Morris", "King", "Watson", "Harris", "Baker", "Lewis", "Young", "Allen", "Mitchell",
    "Kelly", "Murphy", "O'Brien", "Byrne", "Walsh", "Campbell", "Stewart", "Murray", "Reid",
    "Fraser", "Shah", "Ali", "Singh", "Nowak", "Rossi", "Muller", "Dubois", "Bakker", "Fischer",
    "Lambert", "Carter", "Foster",
)  # fmt: skip
_EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")
_GENDERS: tuple[str, ...] = ("F", "M", "X")
_GENDER_PROBS = np.array([0.52, 0.45, 0.03])
_REGIONS: tuple[str, ...] = ("North", "South", "East", "West", "Central")
_REGION_PROBS = np.array([0.22, 0.25, 0.18, 0.15, 0.20])
_COUNTRIES: tuple[str, ...] = ("United Kingdom", "Ireland", "France", "Germany", "Netherlands")
_COUNTRY_PROBS = np.array([0.82, 0.07, 0.04, 0.04, 0.03])
# Fictional ranges: Ofcom's 07700 900xxx drama range for the UK, "555 01xx"-style elsewhere.
_PHONE_PREFIX: tuple[str, ...] = (
    "+44 7700 900",
    "+353 555 0",
    "+33 555 0",
    "+49 555 0",
    "+31 555 0",
)
_CHANNELS: tuple[str, ...] = ("Organic Search", "Paid Social", "Email", "Referral", "Marketplace")
_CHANNEL_PROBS = np.array(
    [
        [0.30, 0.10, 0.30, 0.25, 0.05],
        [0.15, 0.30, 0.10, 0.05, 0.40],
        [0.25, 0.40, 0.05, 0.15, 0.15],
        [0.30, 0.25, 0.15, 0.10, 0.20],
        [0.40, 0.15, 0.15, 0.15, 0.15],
    ]
)
_AGE_MEAN = np.array([46.0, 34.0, 30.0, 38.0, 42.0])
_AGE_SD = np.array([11.0, 10.0, 8.0, 12.0, 13.0])
_INCOME_MEDIAN = np.array([68_000.0, 31_000.0, 38_000.0, 40_000.0, 44_000.0])

# --------------------------------------------------------------------------------------------
# Review phrase banks. Each aspect has its own vocabulary so embeddings cluster by aspect.
# --------------------------------------------------------------------------------------------
_OPENERS: tuple[str, ...] = (
    "Bought the {product} last month.",
    "Ordered the {product} as a gift.",
    "This was my second {category} order from here.",
    "Picked up the {product} for myself.",
    "I ordered this a couple of weeks ago.",
    "First time buying {category} online from this shop.",
    "Got the {product} for my partner.",
    "Ordered the {product} along with a few other bits.",
    "Bought this after reading a few reviews.",
    "Quick review of the {product}.",
    "Bought this ahead of a trip away.",
    "Replacing an old one, so I went for the {product}.",
    "I've had the {product} for a few weeks now.",
    "Ordered this on a whim.",
    "Treated myself to the {product}.",
    "Bought the {product} for my mum's birthday.",
    "Needed a new {product} and gave this one a try.",
    "I've bought from the {category} range a few times before.",
    "Got the {product} in last week's order.",
    "My sister recommended the {product}.",
    "Second time buying the {product}.",
    "Ordered the {product} for the new flat.",
    "Thought I'd leave a review of the {product}.",
    "Had my eye on the {product} for a while.",
)
_CLOSERS: dict[str, tuple[str, ...]] = {
    "positive": (
        "Would definitely recommend.",
        "Will be ordering again.",
        "Very happy overall.",
        "Five stars from me.",
        "Can't fault it.",
        "Really pleased.",
        "Highly recommended.",
        "Thanks again!",
        "Happy customer here.",
        "No complaints at all.",
        "I'll be back for more.",
    ),
    "negative": (
        "Would not recommend.",
        "Won't be ordering again.",
        "Really disappointed.",
        "Not happy at all.",
        "I expected much better.",
        "Very frustrating experience.",
        "Think twice before ordering.",
        "Not impressed.",
        "I'll be shopping elsewhere.",
        "Such a shame.",
        "Very poor overall.",
    ),
    "mixed": (
        "It's okay overall.",
        "Might order again.",
        "Not bad, not great.",
        "Three stars.",
        "Mixed feelings overall.",
        "Could be better.",
        "It does the job.",
        "Room for improvement.",
        "Average experience.",
        "Hard to say if I'd order again.",
        "Fine, I suppose.",
    ),
}
_PHRASES: dict[tuple[str, str], tuple[str, ...]] = {
    ("shipping", "positive"): (
        "Delivery was really quick, it arrived the day after I ordered.",
        "Shipping was fast and the tracking updates were spot on.",
        "The courier turned up on time and the parcel came two days early.",
        "Arrived within 48 hours, much faster than the estimated delivery date.",
        "Really impressed with how quickly this was dispatched and delivered.",
        "Next-day delivery actually meant next day, which is rare these days.",
        "The {product} was delivered earlier than promised.",
        "Tracking was clear and the delivery driver was friendly.",
        "Fast, free shipping and no hassle with the delivery slot.",
        "Dispatched the same afternoon and on my doorstep by the next morning.",
        "I got a text with a one-hour delivery window and the courier came bang on time.",
        "Ordered on Sunday and the parcel was delivered by Tuesday.",
    ),
    ("shipping", "negative"): (
        "The parcel arrived two weeks late with no explanation.",
        "Delivery was delayed three times and nobody told me why.",
        "I was still waiting for my parcel ten days after the tracking stopped updating.",
        "The courier lost it at first and I had to chase them for a week.",
        "It was meant to be next-day delivery but it took nine days to turn up.",
        "My order was marked as delivered days before the parcel actually turned up.",
        "Shipping took far too long, the {product} was delivered well after I needed it.",
        "Late delivery again, the estimated delivery date came and went.",
        "The delivery kept getting delayed and the tracking link was useless.",
        "The driver left the parcel outside the wrong house in the rain.",
        "Dispatch took a week and then the courier missed two delivery slots.",
        "Arrived very late, long after the promised delivery window.",
        "The parcel sat at the courier depot for days before anyone delivered it.",
        "I chose express shipping and it still arrived late.",
    ),
    ("shipping", "mixed"): (
        "Delivery was a couple of days slower than promised, but the tracking kept me informed.",
        "The parcel came a bit late, though the courier was polite.",
        "Shipping was fine in the end, just slower than the estimate.",
        "It arrived on the last day of the delivery window, which was cutting it close.",
        "Dispatch was quick but the courier took its time getting the parcel to me.",
        "Half the order was delivered on time, the other parcel turned up three days later.",
        "Delivery was okay, nothing special, a day or two behind the estimate.",
        "The tracking was confusing, although the parcel did arrive eventually.",
        "Delivery was slower than my last order but still within the week.",
        "The courier left the parcel with a neighbour, which was fine but not what I asked for.",
    ),
    ("quality", "positive"): (
        "The quality of the {product} is excellent, it feels really well made.",
        "Really well made, you can tell it will last for years.",
        "Superb build quality, it feels genuinely premium.",
        "The materials feel premium and the finish is flawless.",
        "Sturdy, solid and beautifully made.",
        "I've used it every day for a month and it still looks brand new.",
        "Excellent craftsmanship, far better than the high street equivalent.",
        "The {product} is durable and holds up really well to daily use.",
        "Top quality as always, which is why I keep coming back.",
        "Lovely quality, it looks even better in person than in the photos.",
        "The attention to detail is impressive, no loose threads or rough edges.",
        "Solid and reliable, the quality is exactly what I hoped for.",
    ),
    ("quality", "negative"): (
        "The quality is poor, it started falling apart after a week.",
        "The {product} broke the second time I used it.",
        "Flimsy materials and a rough finish, very disappointing.",
        "It fell apart within a fortnight of normal use.",
        "One of the parts snapped off on day one.",
        "Really disappointed with the build quality, it feels flimsy.",
        "The finish started peeling within days.",
        "Poorly made, there were scratches and marks on it straight away.",
        "The {product} stopped working properly after a few uses.",
        "Not durable at all, it is already showing signs of wear.",
        "The material feels thin and low grade.",
        "Quality has gone downhill, my old one lasted years but this barely lasted a month.",
        "Faulty from day one, one of the parts was cracked.",
    ),
    ("quality", "mixed"): (
        "The quality is decent, though not quite as premium as I expected.",
        "Well made in most places but the finish is a bit uneven.",
        "Good quality overall, although one part already feels a little loose.",
        "It looks nice, but I'm not convinced it will last very long.",
        "Solid enough for everyday use, just not outstanding.",
        "The materials are fine, but the detailing feels a bit rushed.",
        "Quality is okay, about what you'd expect, nothing more.",
        "The {product} feels sturdy but the finish marks easily.",
        "Some parts feel really well made, others feel flimsy.",
        "Good quality at first, but it is already showing a little wear.",
    ),
    ("price", "positive"): (
        "Great value for money, I got it for a fraction of the usual price.",
        "Picked this up in the sale at a bargain price.",
        "The discount made this an absolute steal.",
        "Brilliant deal, much cheaper than anywhere else I looked.",
        "Fantastic price for what you get.",
        "Used a discount code and saved a good chunk on the {product}.",
        "Really affordable compared with other {category} shops.",
        "Excellent value, and the sale price made it even better.",
        "You can't beat the price, so I bought two.",
        "Worth every penny, the offer was too good to miss.",
        "Half price in the clearance sale, what a bargain.",
        "Such a good deal that I told my friends about the offer.",
    ),
    ("price", "negative"): (
        "The price has gone up noticeably since I last bought this.",
        "Far too expensive for what it is.",
        "Overpriced, I found the same thing cheaper elsewhere.",
        "The price went up again and it's getting hard to justify.",
        "Not worth the money at the current price.",
        "The discount code didn't work at checkout so I ended up paying full price.",
        "Prices have crept up every time I order, it used to be good value.",
        "Poor value for money compared with similar {category} products.",
        "The so-called sale price was barely lower than the normal price.",
        "I paid a lot more than last time for exactly the same {product}.",
    ),
    ("price", "mixed"): (
        "A bit pricey, but the occasional sale makes it worth it.",
        "Reasonable value, though not the bargain it used to be.",
        "The price is fair, not cheap but not a rip-off either.",
        "Good deal in the sale, I wouldn't pay the full price though.",
        "It costs a little more than I'd like, but you get what you pay for.",
        "Decent value for money, though other shops have better offers.",
        "The discount helped, but the price is still on the high side.",
        "Middle of the road on price, fine for what it costs.",
        "Cheaper than the big brands, pricier than the budget ones.",
        "The price has gone up slightly, still just about good value.",
    ),
    # Sizing for clothing and shoes ("fit") ...
    ("sizing_fit", "positive"): (
        "True to size and fits perfectly.",
        "The fit is spot on, I ordered my usual size and it's perfect.",
        "The size chart was accurate, so I got the right size first time.",
        "Fits really well, not too tight and not too loose.",
        "Great fit, exactly as described in the size guide.",
        "I'm between sizes and the {product} still fits beautifully.",
        "Lovely fit, and the length is just right for my size.",
        "The sizing is consistent with everything else I've bought here.",
        "Comfortable fit straight away, no need to exchange for a different size.",
        "Ordered a medium and it fits like it was made for me.",
    ),
    ("sizing_fit", "negative"): (
        "Runs really small, I had to send it back for a bigger size.",
        "The sizing is way off, the large fits like a small.",
        "Far too tight even in my normal size.",
        "The size chart is completely wrong, it doesn't fit at all.",
        "Way too big, even after sizing down.",
        "Had to exchange it twice to get a size that fits.",
        "The {product} came up two sizes smaller than the label says.",
        "The length is all wrong for the size I ordered.",
        "Inconsistent sizing, my usual size is suddenly too small.",
        "Completely the wrong fit, nothing like the measurements in the size guide.",
    ),
    ("sizing_fit", "mixed"): (
        "Fits okay, but it runs slightly large so consider sizing down.",
        "The size is right but the fit is a little snug in places.",
        "Mostly true to size, though the length is a bit short.",
        "Comfortable once I went up a size.",
        "The fit is fine, but the size guide could be clearer.",
        "A little tight at first, the fit loosened up after a few wears.",
        "I'd say it runs half a size small, still wearable though.",
        "Good fit in some places but roomy in others.",
        "Sizing is a bit inconsistent, this one fits but my last order didn't.",
        "It fits, just not quite as I expected from the size chart.",
    ),
    # ... and for everything else ("dimensions").
    ("sizing_dims", "positive"): (
        "The size is exactly as described and it fits perfectly in the space I had.",
        "The dimensions in the listing were accurate, no surprises on size.",
        "A good size, bigger than I expected in a good way.",
        "Perfect size for my needs.",
        "Compact size but still roomy enough for everything.",
        "The {product} is just the right size.",
        "Measured up before ordering and the size was spot on.",
        "Nicely sized, it fits on the shelf with room to spare.",
    ),
    ("sizing_dims", "negative"): (
        "Much smaller than it looks in the photos.",
        "The size is way off from the dimensions in the listing.",
        "Far too big, it doesn't fit anywhere in my flat.",
        "Tiny, the measurements on the website must be wrong.",
        "The {product} is smaller than described and not practical at that size.",
        "Wrong size listed, I had to return it.",
        "It's half the size I expected from the pictures.",
        "It didn't fit the space I measured because the listed dimensions were wrong.",
    ),
    ("sizing_dims", "mixed"): (
        "A bit smaller than I expected, but it still does the job.",
        "The size is fine, though the photos make it look bigger.",
        "Slightly larger than I needed, but I can make the size work.",
        "The dimensions are accurate, but the size feels awkward in practice.",
        "It fits, just about, so check the measurements carefully.",
        "Smaller than I pictured, still a decent size for one person.",
        "Size is okay, not quite as roomy as the listing suggests.",
        "Bigger than expected, which is good and bad.",
    ),
    ("support", "positive"): (
        "Customer service were brilliant and sorted my issue within an hour.",
        "The support team replied quickly and were really helpful.",
        "I had a question about my order and the live chat agent was fantastic.",
        "Returns were easy and the refund was processed within two days.",
        "Really friendly customer service, they went above and beyond.",
        "The agent I spoke to on the phone was patient and helpful.",
        "Support emailed me back the same day with a clear answer.",
        "Great after-sales care, they replaced the {product} without any fuss.",
        "The help centre and chat support made the exchange painless.",
        "Excellent service from the support team, I felt properly looked after.",
    ),
    ("support", "negative"): (
        "Customer service never replied to my emails.",
        "The support team was useless and kept sending copy-paste answers.",
        "Three weeks on and customer service still haven't processed my refund.",
        "Spent an hour on hold to customer service and then the call dropped.",
        "The live chat agent closed the chat without solving anything.",
        "Terrible customer service, rude and unhelpful.",
        "Nobody at customer service takes responsibility, I keep being passed around.",
        "Raised a complaint with support twice and still have no answer.",
        "The returns process is a nightmare and support won't help.",
        "Support promised a call back that never happened.",
        "Customer service ignored every message I sent about the {product}.",
        "I gave up contacting support after five emails with no reply.",
    ),
    ("support", "mixed"): (
        "Customer service was polite, but it took a few days to get a reply.",
        "The support agent was friendly, though they couldn't really fix the problem.",
        "Got my refund in the end, after chasing support a couple of times.",
        "The live chat was helpful, the email support much less so.",
        "Support sorted it eventually, but I had to explain the issue three times.",
        "Decent customer service, just slow to respond.",
        "They offered a partial refund, which was fair but took a while.",
        "The help centre answered some of my questions, I still had to email support.",
        "Helpful staff once you get through, but the wait on the phone is long.",
        "The returns process works, it's just more admin than it should be.",
    ),
    ("packaging", "positive"): (
        "Beautifully packaged, it would make a perfect gift.",
        "Lovely packaging and all of it was recyclable.",
        "Packed really carefully with plenty of protection.",
        "The box was sturdy and everything inside was wrapped neatly.",
        "Nice touch with the tissue paper and the thank-you note in the box.",
        "Minimal plastic in the packaging, which I really appreciate.",
        "The {product} was well wrapped and in pristine condition.",
        "Gorgeous gift box, no need to wrap it myself.",
        "Eco-friendly packaging that was still secure.",
        "Everything was neatly packed and easy to unbox.",
    ),
    ("packaging", "negative"): (
        "The box was crushed and the packaging was torn.",
        "Far too much plastic packaging for one small item.",
        "Badly packed, the {product} was rattling around loose in a huge box.",
        "The packaging was damaged and the seal was broken.",
        "No protective wrapping at all, so it got scuffed in the box.",
        "It was packed in a thin plastic bag that had split open.",
        "Wasteful packaging, layers of bubble wrap and polystyrene.",
        "The outer box was soggy and falling apart.",
        "The packaging was so poor that the contents were dented.",
        "The gift wrap I requested was missing from the box.",
    ),
    ("packaging", "mixed"): (
        "The packaging was nice, but there was more plastic than necessary.",
        "Well packed, although the outer box was a bit battered.",
        "Nice box, but the inner wrapping was a bit thin.",
        "Packaging was fine, nothing special, it did the job.",
        "Recyclable box, though the padding inside was plastic.",
        "Neatly wrapped, but the box was far bigger than it needed to be.",
        "The packaging protected it, but it was a pain to open.",
        "Pretty packaging, though one corner of the box was dented.",
        "Good protective packaging, not very eco-friendly though.",
        "The box looked great but the tape was already coming off.",
    ),
}
_OPENER_PROB = 0.5
_CLOSER_PROB = 0.45
_SENTENCE_COUNT_PROBS = np.array([0.25, 0.50, 0.25])  # 1, 2 or 3 aspect sentences


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoConfig:
    """Size, seed and time window of the demo data set.

    ``end_date`` is fixed (not "today") so output never depends on when it is generated.
    Invalid values raise :class:`ValueError` on construction.
    """

    n_customers: int = 5000
    n_reviews: int | None = None  # default: round(0.8 * n_customers)
    seed: int = 42
    end_date: dt.date = dt.date(2026, 9, 30)
    days: int = 730

    def __post_init__(self) -> None:
        if not _is_int(self.n_customers) or self.n_customers < 1:
            raise ValueError(f"n_customers must be an integer >= 1, got {self.n_customers!r}")
        if self.n_reviews is not None and (not _is_int(self.n_reviews) or self.n_reviews < 0):
            raise ValueError(f"n_reviews must be None or an integer >= 0, got {self.n_reviews!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.end_date, dt.date) or isinstance(self.end_date, dt.datetime):
            raise ValueError(f"end_date must be a datetime.date, got {self.end_date!r}")
        if not _is_int(self.days) or not _MIN_DAYS <= self.days <= 36_500:
            raise ValueError(
                f"days must be an integer between {_MIN_DAYS} and 36500, got {self.days!r}"
            )
        if self.end_date.toordinal() - self.days < dt.date(1900, 1, 1).toordinal():
            raise ValueError("end_date - days must not be before 1900-01-01")

    @property
    def review_count(self) -> int:
        """Number of reviews to generate (``n_reviews`` or 80% of the customers)."""
        if self.n_reviews is not None:
            return int(self.n_reviews)
        return round(0.8 * self.n_customers)

    @property
    def start_date(self) -> dt.date:
        """First day of the data window (inclusive)."""
        return self.end_date - dt.timedelta(days=self.days - 1)


@dataclass
class DemoFrames:
    """The demo tables plus the ground truth the generator planted."""

    customers: pd.DataFrame
    orders: pd.DataFrame
    reviews: pd.DataFrame
    campaigns: pd.DataFrame
    truth_customers: pd.DataFrame
    truth_reviews: pd.DataFrame


def generate_frames(config: DemoConfig | None = None) -> DemoFrames:
    """Generate the demo tables for ``config`` (default :class:`DemoConfig`).

    Deterministic: the same config always returns identical frames.
    """
    if config is None:
        config = DemoConfig()
    if not isinstance(config, DemoConfig):
        raise ValueError(f"config must be a DemoConfig, got {type(config).__name__}")
    rng = np.random.default_rng(config.seed)
    start = np.datetime64(config.start_date, "D")

    cust = _simulate_customers(rng, config.n_customers, config.days)
    orders = _simulate_orders(rng, cust, config.days, start)
    lines = _simulate_lines(rng, cust, orders, start)
    campaigns, campaign_names = _simulate_campaigns(rng, cust, orders, config)
    reviews = _simulate_reviews(rng, cust, orders, lines, config.review_count, config.days)

    customer_ids = _make_ids("C", config.n_customers, 6)
    customers_df = _customers_frame(rng, cust, customer_ids, start)
    return DemoFrames(
        customers=customers_df,
        orders=_orders_frame(orders, lines, customer_ids, start),
        reviews=_reviews_frame(reviews, customer_ids, start),
        campaigns=_campaigns_frame(campaigns, campaign_names, customer_ids, start),
        truth_customers=_truth_customers_frame(cust, customer_ids, start),
        truth_reviews=pd.DataFrame(
            {
                "review_id": _make_ids("R", len(reviews["cust"]), 6),
                "aspect": _take_str(ASPECTS, reviews["aspect"]),
                "sentiment": _take_str(SENTIMENTS, reviews["sentiment"]),
            },
            columns=list(TRUTH_REVIEW_COLUMNS),
        ),
    )


def write_demo(frames: DemoFrames, data_dir: Path) -> dict[str, Path]:
    """Write the demo tables as CSV files and return ``{table_name: path}``.

    ``customers.csv``, ``orders.csv``, ``reviews.csv`` and ``campaigns.csv`` go into
    ``data_dir``; the ground truth goes into ``data_dir / "truth"`` (``customers_truth.csv``,
    ``reviews_truth.csv``) so it is never mistaken for input data. Directories are created.
    Dates are written as YYYY-MM-DD, money with two decimals, text as UTF-8.
    """
    data_dir = Path(data_dir)
    truth_dir = data_dir / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    targets = {
        "customers": (frames.customers, data_dir / "customers.csv"),
        "orders": (frames.orders, data_dir / "orders.csv"),
        "reviews": (frames.reviews, data_dir / "reviews.csv"),
        "campaigns": (frames.campaigns, data_dir / "campaigns.csv"),
        "truth_customers": (frames.truth_customers, truth_dir / "customers_truth.csv"),
        "truth_reviews": (frames.truth_reviews, truth_dir / "reviews_truth.csv"),
    }
    paths: dict[str, Path] = {}
    for name, (frame, path) in targets.items():
        frame.to_csv(
            path,
            index=False,
            encoding="utf-8",
            lineterminator="\n",
            date_format="%Y-%m-%d",
            float_format="%.2f",  # the only float columns are money
        )
        paths[name] = path
    return paths


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------
def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _pick(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw: one category index per row of the cumulative probabilities ``cum``."""
    u = rng.random(cum.shape[0])
    idx = (u[:, None] >= cum).sum(axis=1)
    return np.minimum(idx, cum.shape[1] - 1)


def _segment_counts(n: int) -> np.ndarray:
    """Exact segment sizes (largest remainder), so small data sets still get the mix."""
    raw = _SEGMENT_SHARES * n
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def _uniform_days(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Integer day uniformly in [lo, hi] (inclusive), element-wise; hi < lo collapses to lo."""
    hi = np.maximum(hi, lo)
    return (lo + np.floor(rng.random(lo.shape[0]) * (hi - lo + 1))).astype(np.int32)


def _season(days: int, start: np.datetime64) -> np.ndarray:
    months = (start + np.arange(days)).astype("datetime64[M]").astype(np.int64) % 12
    return _MONTH_SEASON[months]


def _simulate_customers(rng: np.random.Generator, n: int, days: int) -> dict[str, np.ndarray]:
    """Segments, signup/churn timing and purchase rates, indexed by customer (signup order)."""
    seg = np.repeat(np.arange(5, dtype=np.int8), _segment_counts(n))
    seg = seg[rng.permutation(n)]
    last = days - 1

    # Lapsing customers stop 105-300 days before the end after a year or more of buying, so
    # their last order is typically 4-14 months back.
    lapse_day = _uniform_days(
        rng, np.full(n, min(max(150, last - 300), last)), np.full(n, max(150, last - 105))
    )
    lapse_day = np.minimum(lapse_day, last)
    signup_hi = np.select(
        [seg == _LOYAL, seg == _BARGAIN, seg == _LAPSING, seg == _OCCASIONAL],
        [
            np.full(n, max(0, days - 365)),
            np.full(n, max(0, days - 270)),
            np.maximum(0, lapse_day.astype(np.int64) - 360),
            np.full(n, max(0, days - 300)),
        ],
        default=last,
    )
    signup = _uniform_days(rng, np.zeros(n, dtype=np.int64), signup_hi)
    # New customers signed up in the last _NEW_WINDOW_DAYS.
    new_age = rng.integers(0, _NEW_WINDOW_DAYS, n)
    signup = np.where(seg == _NEW, last - new_age, signup).astype(np.int32)
    first = np.minimum(signup + rng.integers(0, 4, n), last).astype(np.int32)

    # Churn: lapsing customers stop at lapse_day (95% are true churners, the rest are merely
    # dormant and would come back after the data ends); some other established customers
    # churn at a day spread over the final _CHURN_WINDOW_DAYS (some inside the last 90 days).
    churn_draw = rng.random(n) < _CHURN_PROB[seg]
    churn_lo = np.maximum(first.astype(np.int64) + 150, days - _CHURN_WINDOW_DAYS)
    other_churn_day = _uniform_days(rng, churn_lo, np.full(n, last))
    can_churn = (seg != _NEW) & (seg != _LAPSING) & (churn_lo <= last)
    stops = (seg == _LAPSING) | (churn_draw & can_churn)
    stop_day = np.where(seg == _LAPSING, lapse_day, np.where(stops, other_churn_day, days))
    churned = stops & ((seg != _LAPSING) | churn_draw)
    # How long the purchase rate fades before the stop, and the customer's base rate.
    decline = rng.uniform(_DECLINE_DAYS[seg, 0], _DECLINE_DAYS[seg, 1])
    rate = rng.gamma(_RATE_SHAPE, 1.0 / _RATE_SHAPE, n) / _MEAN_GAP_DAYS[seg]

    # Customer ids are assigned in signup order, like a real system would.
    order = np.lexsort((np.arange(n), signup))
    cust = {
        "seg": seg,
        "signup": signup,
        "first": first,
        "stop": stop_day.astype(np.int32),
        "stops": stops,
        "churned": churned,
        "decline": decline,
        "rate": rate,
    }
    cust = {key: value[order] for key, value in cust.items()}
    gamma = rng.gamma(_CATEGORY_ALPHA[cust["seg"]])
    gamma += 1e-12  # guard against an all-zero draw for tiny alphas
    cust["pref_cum"] = np.cumsum(gamma / gamma.sum(axis=1, keepdims=True), axis=1).astype(
        np.float32
    )
    return cust


def _simulate_orders(
    rng: np.random.Generator, cust: dict[str, np.ndarray], days: int, start: np.datetime64
) -> dict[str, np.ndarray]:
    """Order headers (customer index, day index) sorted by (day, customer).

    Established customers buy as a time-warped renewal process: their rate is constant, or for
    churners and lapsers fades exponentially over the months before the stop day (so gaps grow
    before they stop, and nothing is bought from the stop day on); a seasonal thinning then
    favours November and December.
    """
    seg, first, stop = cust["seg"], cust["first"], cust["stop"]
    n = seg.shape[0]
    season = _season(days, start)
    est = np.flatnonzero(seg != _NEW)
    t0 = first[est].astype(np.float64)
    stops = cust["stops"][est]
    end = stop[est].astype(np.float64)  # the stop day, or `days` for customers who stay
    # For stoppers the rate is flat up to `fade_at`, then decays exponentially (time constant
    # tau) until it is cut off at `end`; for everyone else it stays flat up to `end`.
    fade_at = np.where(stops, np.clip(end - cust["decline"][est], t0, end), end)
    tau = cust["decline"][est] / _DECAY_FACTOR
    flat = fade_at - t0
    span = flat + tau * -np.expm1(-(end - fade_at) / tau)  # integral of the relative rate
    lam = cust["rate"][est] / season.mean()  # the seasonal thinning below removes the excess
    # Renewal process with gamma gaps in "operational time" (mean gap 1): more regular than
    # Poisson, so segments stay compact. Draw enough gaps to cover the span almost surely.
    u_end = lam * span
    n_draw = np.ceil(u_end + 5 * np.sqrt(u_end / _GAP_SHAPE) + 2).astype(np.int64)
    rep = np.repeat(np.arange(est.shape[0], dtype=np.int32), n_draw)
    u = np.cumsum(rng.gamma(_GAP_SHAPE, 1.0 / _GAP_SHAPE, rep.shape[0]))
    group_end = np.cumsum(n_draw)
    u -= np.repeat(np.r_[0.0, u[group_end[:-1] - 1]], n_draw)
    keep = u < u_end[rep]
    rep, x = rep[keep], u[keep] / lam[rep[keep]]
    # Map back to calendar time by inverting the integrated rate.
    past_flat = x > flat[rep]
    t = t0[rep] + x
    r = rep[past_flat]
    t[past_flat] = fade_at[r] - tau[r] * np.log1p(-(x[past_flat] - flat[r]) / tau[r])
    t = np.minimum(t, end[rep] - 1e-6)  # guard against rounding at the cut-off
    del u, x, past_flat, r
    keep = rng.random(t.shape[0]) < season[np.minimum(t.astype(np.int64), days - 1)]
    cand_cust, cand_day = est[rep[keep]].astype(np.int32), t[keep].astype(np.int32)
    del t, rep, keep

    # New customers: 0-2 more orders after the first one, on any later day.
    new = np.flatnonzero((seg == _NEW) & (first < days - 1))
    extra = _pick(rng, np.broadcast_to(np.cumsum([0.10, 0.50, 0.40]), (new.shape[0], 3)))
    new_cust = np.repeat(new.astype(np.int32), extra)
    new_day = _uniform_days(
        rng, first[new_cust].astype(np.int64) + 1, np.full(new_cust.shape[0], days - 1)
    )

    all_cust = np.concatenate([np.arange(n, dtype=np.int32), cand_cust, new_cust])
    all_day = np.concatenate([first, cand_day, new_day])
    # At most one order per customer per day, sorted by (day, customer).
    key = np.sort(all_day.astype(np.int64) * n + all_cust)
    key = key[np.r_[True, key[1:] != key[:-1]]]
    return {"cust": (key % n).astype(np.int32), "day": (key // n).astype(np.int32)}


def _simulate_lines(
    rng: np.random.Generator,
    cust: dict[str, np.ndarray],
    orders: dict[str, np.ndarray],
    start: np.datetime64,
) -> dict[str, np.ndarray]:
    """Order lines, kept as (order, slot) matrices with -1 in unused slots."""
    o_cust, o_day = orders["cust"], orders["day"]
    m = o_cust.shape[0]
    seg = cust["seg"][o_cust]
    n_lines = (_pick(rng, np.cumsum(_LINES_PROBS, axis=1)[seg]) + 1).astype(np.int8)

    cat = np.full((m, _MAX_LINES), -1, dtype=np.int8)
    cat[:, 0] = _pick(rng, cust["pref_cum"][o_cust])
    partner = _PARTNER[cat[:, 0]]
    for k in range(1, _MAX_LINES):
        rows = np.flatnonzero(n_lines > k)
        own = _pick(rng, cust["pref_cum"][o_cust[rows]])
        use_partner = (rng.random(rows.shape[0]) < _PARTNER_PROB) & (partner[rows] >= 0)
        cat[rows, k] = np.where(use_partner, partner[rows], own)

    tier_cum = np.cumsum(_TIER_PROBS, axis=1)
    prod = np.full((m, _MAX_LINES), -1, dtype=np.int16)
    for k in range(_MAX_LINES):
        rows = np.flatnonzero(n_lines > k)
        local = _pick(rng, tier_cum[seg[rows]]) * 2 + rng.integers(0, 2, rows.shape[0])
        base = cat[rows, k].astype(np.int16) * _PER_CAT
        # Never repeat a product within an order: step to the next one in the category.
        for _ in range(_PER_CAT):
            clash = (prod[rows, :k] == (base + local)[:, None]).any(axis=1)
            if not clash.any():
                break
            local[clash] = (local[clash] + 1) % _PER_CAT
        prod[rows, k] = base + local

    slot_rows, slots = np.nonzero(prod >= 0)  # row-major: order by order, slot by slot
    line_prod = prod[slot_rows, slots]
    line_seg = seg[slot_rows]
    line_day = o_day[slot_rows]

    multi = rng.random(line_prod.shape[0]) < _MULTI_QTY_PROB[line_seg]
    three = (line_seg == _BARGAIN) & (rng.random(line_prod.shape[0]) < 0.4)
    quantity = (1 + multi * (1 + three)).astype(np.int32)

    # List prices creep up over time (and end in .99); discounts depend on segment and are
    # common in the Black Friday week.
    list_price = np.floor(_LIST_PRICES[line_prod] * (1 + _ANNUAL_PRICE_RISE * line_day / 365))
    list_price += 0.99
    dates = start + line_day.astype("timedelta64[D]")
    month = dates.astype("datetime64[M]")
    dom = (dates - month).astype(np.int64) + 1
    black_friday = (month.astype(np.int64) % 12 == 10) & (dom >= 20)
    disc_prob = _DISCOUNT_PROB[line_seg]
    disc_prob = np.where(black_friday, np.maximum(disc_prob, 0.4), disc_prob)
    discounted = rng.random(line_prod.shape[0]) < disc_prob
    steps = rng.integers(0, 5, line_prod.shape[0])
    rate = np.where(line_seg == _BARGAIN, 0.20 + 0.05 * steps, 0.10 + 0.025 * steps)
    unit_price = np.round(list_price * (1 - rate * discounted), 2)

    return {
        "n_lines": n_lines,
        "prod2d": prod,
        "order_row": slot_rows.astype(np.int32),
        "product": line_prod,
        "quantity": quantity,
        "unit_price": unit_price,
    }


def _campaign_schedule(config: DemoConfig) -> list[tuple[str, str, int]]:
    """(name, type, day index) per campaign, sorted by date."""
    start, end = config.start_date, config.end_date
    lo, hi = start + dt.timedelta(days=60), end - dt.timedelta(days=21)
    schedule = []
    for name, kind, month, day, occurrence in _CAMPAIGNS:
        fits = []
        for year in range(end.year, start.year - 1, -1):
            try:
                when = dt.date(year, month, day)
            except ValueError:  # e.g. a date that does not exist in that year
                continue
            if lo <= when <= hi:
                fits.append(when)
        when = fits[min(occurrence, len(fits) - 1)] if fits else lo
        schedule.append((name, kind, (when - start).days))
    return sorted(schedule, key=lambda item: (item[2], item[0]))


def _simulate_campaigns(
    rng: np.random.Generator,
    cust: dict[str, np.ndarray],
    orders: dict[str, np.ndarray],
    config: DemoConfig,
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Campaign sends and responses (one row per customer reached) and the campaign names."""
    n, days = cust["seg"].shape[0], config.days
    seg, signup, stop, stops = cust["seg"], cust["signup"], cust["stop"], cust["stops"]
    # Orders sorted customer-major, to look up each customer's last order before a send.
    span = days + 1
    by_cust = np.sort(orders["cust"].astype(np.int64) * span + orders["day"])
    idx_all = np.arange(n, dtype=np.int64)
    parts: dict[str, list[np.ndarray]] = {"cust": [], "campaign": [], "day": [], "resp": []}
    schedule = _campaign_schedule(config)
    for ci, (_, kind, day) in enumerate(schedule):
        gone = stops & (stop < day - 120)
        eligible = (signup <= day) & (~gone | (rng.random(n) < 0.15))
        sent = np.flatnonzero(eligible & (rng.random(n) < _CAMPAIGN_REACH))
        pos = np.searchsorted(by_cust, idx_all[sent] * span + day, side="right") - 1
        pos_ok = pos >= 0
        found = pos_ok & (by_cust[np.maximum(pos, 0)] // span == sent)
        last = np.where(found, by_cust[np.maximum(pos, 0)] % span, signup[sent])
        recency = day - last
        prob = _CAMPAIGN_BASE_RESPONSE[kind][seg[sent]] * (0.45 + 1.1 * np.exp(-recency / 60))
        prob = np.where(stops[sent] & (stop[sent] < day), prob * 0.15, prob)
        resp = rng.random(sent.shape[0]) < np.minimum(prob, 0.95)
        parts["cust"].append(sent.astype(np.int32))
        parts["campaign"].append(np.full(sent.shape[0], ci, dtype=np.int8))
        parts["day"].append(np.full(sent.shape[0], day, dtype=np.int32))
        parts["resp"].append(resp)
    frames = {key: np.concatenate(value) for key, value in parts.items()}
    return frames, tuple(name for name, _, _ in schedule)


def _distinct(us: np.ndarray, k: int, size: int) -> list[int]:
    """``k`` distinct indices below ``size`` from uniforms ``us`` (sequential sampling)."""
    taken: list[int] = []
    for j in range(min(k, size)):
        idx = int(us[j] * (size - j))
        for t in sorted(taken):
            if idx >= t:
                idx += 1
        taken.append(idx)
    return taken


def _compose_texts(
    rng: np.random.Generator,
    aspect: np.ndarray,
    sentiment: np.ndarray,
    product: np.ndarray,
) -> list[str]:
    """Review texts: optional opener, 1-3 sentences about the primary aspect, optional closer."""
    n = aspect.shape[0]
    has_opener = rng.random(n) < _OPENER_PROB
    opener = rng.integers(0, len(_OPENERS), n)
    n_sent = _pick(rng, np.broadcast_to(np.cumsum(_SENTENCE_COUNT_PROBS), (n, 3))) + 1
    picks = rng.random((n, 3))
    has_closer = rng.random(n) < _CLOSER_PROB
    closer = rng.integers(0, len(_CLOSERS["positive"]), n)
    wearable = _WEARABLE[_PRODUCT_CATEGORY[product]]

    texts: list[str] = []
    for i in range(n):
        a, s = ASPECTS[aspect[i]], SENTIMENTS[sentiment[i]]
        if a == "sizing":
            a = "sizing_fit" if wearable[i] else "sizing_dims"
        bank = _PHRASES[(a, s)]
        parts = [_OPENERS[opener[i]]] if has_opener[i] else []
        parts.extend(bank[j] for j in _distinct(picks[i], int(n_sent[i]), len(bank)))
        if has_closer[i]:
            parts.append(_CLOSERS[s][closer[i]])
        p = int(product[i])
        texts.append(
            " ".join(parts).format(
                product=_PRODUCT_NAMES[p], category=_CATEGORIES[_PRODUCT_CATEGORY[p]].lower()
            )
        )
    return texts


def _simulate_reviews(
    rng: np.random.Generator,
    cust: dict[str, np.ndarray],
    orders: dict[str, np.ndarray],
    lines: dict[str, np.ndarray],
    n_reviews: int,
    days: int,
) -> dict[str, np.ndarray]:
    """Reviews written a few days after a random order (so authors are weighted by orders)."""
    m = orders["cust"].shape[0]
    oi = rng.integers(0, m, n_reviews)
    c = orders["cust"][oi]
    seg = cust["seg"][c]
    aspect = _pick(rng, np.cumsum(_ASPECT_PROBS, axis=1)[seg])
    sentiment = _pick(rng, np.cumsum(_SENTIMENT_PROBS[seg, aspect], axis=1))

    # Review one line of the order; sizing reviews prefer a clothing or shoe line.
    prod2d = lines["prod2d"][oi]
    score = rng.random((n_reviews, _MAX_LINES))
    wear = _WEARABLE[_PRODUCT_CATEGORY[np.maximum(prod2d, 0)]] & (prod2d >= 0)
    score += wear * (aspect == ASPECTS.index("sizing"))[:, None]
    score[prod2d < 0] = -1.0
    product = prod2d[np.arange(n_reviews), score.argmax(axis=1)]

    # Reviews never postdate the data window nor a churner's exit.
    cap = np.where(cust["stops"][c], np.minimum(cust["stop"][c], days - 1), days - 1)
    day = np.minimum(orders["day"][oi] + rng.integers(1, 15, n_reviews), cap).astype(np.int32)
    anonymous = rng.random(n_reviews) < _ANONYMOUS_SHARE
    r = rng.random(n_reviews)
    rating = np.select(
        [sentiment == 0, sentiment == 1], [4 + (r < 0.65), 1 + (r < 0.45)], default=3
    ).astype(np.int64)
    texts = _compose_texts(rng, aspect, sentiment, product)

    order = np.lexsort((np.arange(n_reviews), day))
    return {
        "cust": np.where(anonymous, -1, c)[order],
        "day": day[order],
        "product": product[order],
        "aspect": aspect[order],
        "sentiment": sentiment[order],
        "rating": rating[order],
        "text": np.array(texts, dtype=object)[order],
    }


# --------------------------------------------------------------------------------------------
# Frame assembly
# --------------------------------------------------------------------------------------------
_STR_DTYPE = pd.Series(["x"]).dtype  # the default string dtype of the installed pandas
_DATE_DTYPE = "datetime64[us]"  # what pandas 3 parses YYYY-MM-DD into


def _make_ids(prefix: str, n: int, min_width: int) -> pd.api.extensions.ExtensionArray:
    """``prefix`` + zero-padded 1-based counter, built as bytes to stay fast at millions."""
    width = max(min_width, len(str(n)))
    num = np.arange(1, n + 1, dtype=np.int64)
    buf = np.empty((n, len(prefix) + width), dtype=np.uint8)
    buf[:, : len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    for k in range(width):
        buf[:, -1 - k] = 48 + (num // 10**k) % 10
    text = buf.view(f"S{buf.shape[1]}").ravel().astype(f"U{buf.shape[1]}")
    return pd.array(text, dtype=_STR_DTYPE)


def _take_str(
    values: tuple[str, ...] | pd.api.extensions.ExtensionArray, codes: np.ndarray
) -> pd.api.extensions.ExtensionArray:
    """Strings ``values[codes]`` in the default string dtype; code -1 gives a missing value."""
    if isinstance(values, tuple):
        values = pd.array(list(values), dtype=_STR_DTYPE)
    return values.take(np.asarray(codes, dtype=np.intp), allow_fill=True)


def _dates(start: np.datetime64, day: np.ndarray) -> np.ndarray:
    return (start + day.astype("timedelta64[D]")).astype(_DATE_DTYPE)


def _customers_frame(
    rng: np.random.Generator,
    cust: dict[str, np.ndarray],
    customer_ids: pd.api.extensions.ExtensionArray,
    start: np.datetime64,
) -> pd.DataFrame:
    seg = cust["seg"]
    n = seg.shape[0]
    gender = _pick(rng, np.broadcast_to(np.cumsum(_GENDER_PROBS), (n, 3)))
    n_f, n_m, n_last = len(_FIRST_NAMES_F), len(_FIRST_NAMES_M), len(_LAST_NAMES)
    first = rng.integers(0, n_f + n_m, n)  # "X": either list
    first = np.where(gender == 0, first % n_f, np.where(gender == 1, n_f + first % n_m, first))
    last = rng.integers(0, n_last, n)
    combo = first * n_last + last

    firsts = _FIRST_NAMES_F + _FIRST_NAMES_M
    names = [f"{f} {s}" for f in firsts for s in _LAST_NAMES]
    locals_ = [
        f"{f}.{s}".lower().replace("'", "") for f in firsts for s in _LAST_NAMES
    ]  # e.g. amelia.obrien
    # Unique emails: the k-th customer with the same name gets the suffix k (k >= 2).
    by_combo = np.lexsort((np.arange(n), combo))
    group_start = np.r_[0, np.flatnonzero(np.diff(combo[by_combo])) + 1]
    rank_sorted = np.arange(n) - np.repeat(group_start, np.diff(np.r_[group_start, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[by_combo] = rank_sorted
    domain = rng.integers(0, len(_EMAIL_DOMAINS), n)
    local_arr = np.array(locals_, dtype=object)[combo]
    suffix = np.where(rank > 0, (rank + 1).astype(str).astype(object), "")
    email = local_arr + suffix + np.array(["@" + d for d in _EMAIL_DOMAINS], dtype=object)[domain]

    country = _pick(rng, np.broadcast_to(np.cumsum(_COUNTRY_PROBS), (n, len(_COUNTRIES))))
    digits = np.array([f"{i:03d}" for i in range(1000)], dtype=object)
    phone = np.array(_PHONE_PREFIX, dtype=object)[country] + digits[rng.integers(0, 1000, n)]
    region = _pick(rng, np.broadcast_to(np.cumsum(_REGION_PROBS), (n, len(_REGIONS))))
    channel = _pick(rng, np.cumsum(_CHANNEL_PROBS, axis=1)[seg])
    age = np.clip(np.rint(rng.normal(_AGE_MEAN[seg], _AGE_SD[seg])), 18, 80).astype(np.int64)
    income = _INCOME_MEDIAN[seg] * np.exp(rng.normal(0.0, 0.35, n)) * (1 + (age - 40) * 0.005)
    income = (np.clip(np.rint(income / 100), 120, 4000) * 100).astype(np.int64)

    return pd.DataFrame(
        {
            "customer_id": customer_ids,
            "name": _take_str(tuple(names), combo),
            "email": pd.array(email, dtype=_STR_DTYPE),
            "phone": pd.array(phone, dtype=_STR_DTYPE),
            "signup_date": _dates(start, cust["signup"]),
            "age": age,
            "gender": _take_str(_GENDERS, gender),
            "region": _take_str(_REGIONS, region),
            "country": _take_str(_COUNTRIES, country),
            "channel": _take_str(_CHANNELS, channel),
            "income": income,
        },
        columns=list(CUSTOMER_COLUMNS),
    )


def _orders_frame(
    orders: dict[str, np.ndarray],
    lines: dict[str, np.ndarray],
    customer_ids: pd.api.extensions.ExtensionArray,
    start: np.datetime64,
) -> pd.DataFrame:
    row = lines["order_row"]
    order_ids = _make_ids("O", orders["cust"].shape[0], 7)
    return pd.DataFrame(
        {
            "order_id": _take_str(order_ids, row),
            "customer_id": _take_str(customer_ids, orders["cust"][row]),
            "order_date": _dates(start, orders["day"][row]),
            "product": _take_str(_PRODUCT_NAMES, lines["product"]),
            "category": _take_str(_CATEGORIES, _PRODUCT_CATEGORY[lines["product"]]),
            "quantity": lines["quantity"],
            "unit_price": lines["unit_price"],
        },
        columns=list(ORDER_COLUMNS),
    )


def _reviews_frame(
    reviews: dict[str, np.ndarray],
    customer_ids: pd.api.extensions.ExtensionArray,
    start: np.datetime64,
) -> pd.DataFrame:
    n = reviews["cust"].shape[0]
    return pd.DataFrame(
        {
            "review_id": _make_ids("R", n, 6),
            "customer_id": _take_str(customer_ids, reviews["cust"]),
            "date": _dates(start, reviews["day"]),
            "product": _take_str(_PRODUCT_NAMES, reviews["product"]),
            "category": _take_str(_CATEGORIES, _PRODUCT_CATEGORY[reviews["product"]]),
            "rating": reviews["rating"],
            "text": pd.array(reviews["text"], dtype=_STR_DTYPE),
        },
        columns=list(REVIEW_COLUMNS),
    )


def _campaigns_frame(
    campaigns: dict[str, np.ndarray],
    names: tuple[str, ...],
    customer_ids: pd.api.extensions.ExtensionArray,
    start: np.datetime64,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": _take_str(customer_ids, campaigns["cust"]),
            "campaign": _take_str(names, campaigns["campaign"]),
            "sent_date": _dates(start, campaigns["day"]),
            "responded": campaigns["resp"].astype(np.int64),
        },
        columns=list(CAMPAIGN_COLUMNS),
    )


def _truth_customers_frame(
    cust: dict[str, np.ndarray],
    customer_ids: pd.api.extensions.ExtensionArray,
    start: np.datetime64,
) -> pd.DataFrame:
    churn_date = pd.Series(_dates(start, cust["stop"])).where(cust["churned"])
    return pd.DataFrame(
        {
            "customer_id": customer_ids,
            "segment": _take_str(SEGMENTS, cust["seg"]),
            "churned": cust["churned"].astype(bool),
            "churn_date": churn_date.astype(_DATE_DTYPE),
        },
        columns=list(TRUTH_CUSTOMER_COLUMNS),
    )
