"""Generate the quickstart sample data: ``data/customers.csv`` and ``data/orders.csv``.

The data looks like an export from a small online shop and is deliberately messy, so the
quickstart can show parsing errors, failed casts, quality checks and quarantine on real-looking
input. Every defect is injected on purpose, into rows that carry no other defect, so the counts
listed in ``README.md`` are exact.

Only the standard library is used, with a fixed seed and integer arithmetic (no floating-point
maths that could round differently on another platform), so the output is byte-identical on every
machine and Python version.

    python examples/quickstart/generate.py           # (re)write the files if they changed
    python examples/quickstart/generate.py --check   # exit 1 if the committed files are stale
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SEED = 20240917
DATA_DIR = Path(__file__).resolve().parent / "data"

N_CUSTOMERS = 1_000
N_ORDERS = 4_995  # distinct orders; 12 become malformed lines and 5 are sent twice -> 5,000 lines
FIRST_ORDER_ID = 100_001
EXPORT_DATE = dt.date(2025, 1, 1)

CUSTOMER_COLUMNS = ["customer_id", "name", "email", "country", "signup_date", "segment"]
ORDER_COLUMNS = [
    "order_id",
    "customer_id",
    "order_date",
    "status",
    "amount",
    "currency",
    "channel",
]

FIRST_NAMES = [
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Lucas", "Mia", "Elias", "Sofia", "Mateo",
    "Hannah", "Jonas", "Chloé", "Louis", "Lea", "Finn", "Zoë", "Hugo", "Ingrid", "Lars",
    "Aisha", "Omar", "Priya", "Arjun", "Yuki", "Haruto", "Wei", "Mei", "Santiago", "Lucía",
    "Gabriel", "Ana", "João", "Beatriz", "Piotr", "Zofia", "Marco", "Giulia", "Sven", "Astrid",
    "James", "Charlotte", "William", "Amelia", "Ethan", "Grace", "Daniel", "Chloe", "Samuel",
    "Ruby", "Kofi", "Amara", "Mateusz", "Agnieszka", "Björn", "Åsa", "Renée", "François",
    "Sinéad", "Seán",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Müller", "Martin", "García", "Rossi", "Jansen", "Johansson", "Kowalski",
    "Silva", "Tanaka", "Sato", "Wang", "Patel", "Sharma", "Dubois", "Bernard", "Schneider",
    "Fischer", "Weber", "Novak", "López", "Fernández", "Bianchi", "Romano", "de Vries",
    "van Dijk", "Andersson", "Nilsson", "Brown", "Wilson", "Taylor", "Thompson", "O'Brien",
    "O'Connor", "MacDonald", "Nguyen", "Kim", "Park", "Mensah", "Okafor", "Costa", "Santos",
    "Lefèvre", "Nowak", "Wójcik", "Ødegaard", "Hernández", "Moreau", "Keller", "Becker",
]  # fmt: skip
ASCII_FOLD = str.maketrans({
    "é": "e", "è": "e", "ë": "e", "ü": "u", "ö": "o", "ø": "o", "å": "a",
    "á": "a", "í": "i", "ó": "o", "ú": "u", "ã": "a", "ç": "c", "ñ": "n", "ś": "s", "ć": "c",
    "ł": "l", "ź": "z", "ż": "z",
})  # fmt: skip
NICKNAMES = [("Katherine", "Kate"), ("Robert", "Bob")]
EMAIL_DOMAINS = [
    ("example.com", 40), ("mail.example.org", 25), ("inbox.example.net", 20),
    ("post.example.de", 10), ("corp.example.co.uk", 5),
]  # fmt: skip

# country -> (weight, currency, price factor in percent of the USD list price)
COUNTRIES = {
    "US": (30, "USD", 100), "DE": (12, "EUR", 95), "GB": (10, "GBP", 80),
    "FR": (9, "EUR", 95), "CA": (6, "CAD", 135), "NL": (5, "EUR", 95), "ES": (5, "EUR", 95),
    "IT": (5, "EUR", 95), "AU": (4, "AUD", 150), "SE": (3, "SEK", 1050),
    "PL": (3, "PLN", 400), "BR": (3, "BRL", 500), "JP": (3, "JPY", 15000),
    "IN": (2, "INR", 8300),
}  # fmt: skip
SEGMENTS = [("consumer", 70), ("small_business", 22), ("enterprise", 8)]
CHANNELS = [("web", 50), ("mobile", 30), ("store", 12), ("marketplace", 5), ("phone", 3)]
PRICES_CENTS = [
    (499, 8), (999, 14), (1299, 10), (1499, 12), (1999, 14), (2499, 10), (2999, 8),
    (3499, 6), (4999, 7), (7999, 5), (9999, 3), (14999, 2), (24999, 1),
]  # fmt: skip


class Rng:
    """The few draws this generator needs, on top of ``random.Random``.

    ``randrange``, ``random`` and list-based ``sample`` have produced the same sequence for a
    given seed since Python 3.2; weighted picks are done here with integers only.
    """

    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def below(self, n: int) -> int:
        return self._r.randrange(n)

    def between(self, low: int, high: int) -> int:
        return low + self._r.randrange(high - low + 1)

    def chance(self, percent: int) -> bool:
        return self._r.randrange(100) < percent

    def pick(self, items: Sequence[T]) -> T:
        return items[self._r.randrange(len(items))]

    def weighted(self, pairs: Sequence[tuple[T, int]]) -> T:
        ticket = self._r.randrange(sum(weight for _, weight in pairs))
        for item, weight in pairs:
            if ticket < weight:
                return item
            ticket -= weight
        raise AssertionError("unreachable")

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        return self._r.sample(list(items), k)

    def date(self, start: dt.date, end: dt.date) -> dt.date:
        return start + dt.timedelta(days=self._r.randrange((end - start).days + 1))


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def fold(name: str) -> str:
    """An email-safe, lower-case ASCII form of a name: ``Ødegaard`` -> ``odegaard``."""
    return name.lower().translate(ASCII_FOLD).replace(" ", "").replace("'", "")


def take(pool: list[int], rng: Rng, k: int) -> list[int]:
    """Remove ``k`` random row indexes from ``pool`` so each defect lands on its own rows."""
    chosen = rng.sample(pool, k)
    taken = set(chosen)
    pool[:] = [i for i in pool if i not in taken]
    return sorted(chosen)


# --- customers ---------------------------------------------------------------------------------


@dataclass
class Customer:
    customer_id: int
    name: str
    email: str
    country: str
    signup_date: dt.date
    segment: str

    def row(self) -> list[str]:
        return [
            str(self.customer_id),
            self.name,
            self.email,
            self.country,
            self.signup_date.isoformat(),
            self.segment,
        ]


MALFORMED_EMAILS = [
    lambda local, domain: f"{local}.{domain}",  # "@" missing: bob.example.com
    lambda local, domain: f"{local}@",  # domain missing
    lambda local, domain: f"@{domain}",  # local part missing
    lambda local, domain: f"{local}@@{domain}",  # doubled "@"
    lambda local, domain: f"{local.replace('.', ' ', 1)}@{domain}",  # a space inside
    lambda local, domain: f"{local}@{domain.split('.')[0]}",  # no dot in the domain
]


def make_customers(rng: Rng) -> tuple[list[Customer], list[list[str]]]:
    seen_emails: set[str] = set()
    customers: list[Customer] = []
    for customer_id in range(1, N_CUSTOMERS + 1):
        first, last = rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES)
        local = f"{fold(first)}.{fold(last)}"
        domain = rng.weighted(EMAIL_DOMAINS)
        email, n = f"{local}@{domain}", 1
        while email in seen_emails:
            n += 1
            email = f"{local}{n}@{domain}"
        seen_emails.add(email)
        country = rng.weighted([(code, w) for code, (w, _, _) in COUNTRIES.items()])
        customers.append(
            Customer(
                customer_id=customer_id,
                name=f"{first} {last}",
                email=email,
                country=country,
                signup_date=rng.date(dt.date(2021, 1, 1), dt.date(2024, 10, 31)),
                segment=rng.weighted(SEGMENTS),
            )
        )

    rows = [c.row() for c in customers]
    col = {name: i for i, name in enumerate(CUSTOMER_COLUMNS)}
    pool = list(range(N_CUSTOMERS))

    # Valid but tricky CSV: names that need quoting.
    for i in take(pool, rng, 5):
        first, last = rows[i][col["name"]].split(" ", 1)
        rows[i][col["name"]] = f"{last}, {first}"  # entered surname first
    for (first, nickname), i in zip(NICKNAMES, take(pool, rng, len(NICKNAMES)), strict=True):
        last = rows[i][col["name"]].split(" ", 1)[1]
        rows[i][col["name"]] = f'{first} "{nickname}" {last}'
        domain = rows[i][col["email"]].split("@")[1]
        rows[i][col["email"]] = f"{first.lower()}.{fold(last)}@{domain}"

    # Defects, one per row.
    for i in take(pool, rng, 20):
        rows[i][col["email"]] = ""
    for i in take(pool, rng, 8):
        rows[i][col["email"]] = "NULL"
    for n, i in enumerate(take(pool, rng, 12)):
        local, domain = rows[i][col["email"]].split("@")
        rows[i][col["email"]] = MALFORMED_EMAILS[n % len(MALFORMED_EMAILS)](local, domain)
    for n, i in enumerate(take(pool, rng, 25)):
        code = rows[i][col["country"]]
        rows[i][col["country"]] = code.lower() if n % 2 == 0 else code[0] + code[1].lower()
    for n, i in enumerate(take(pool, rng, 15)):
        code = rows[i][col["country"]]
        rows[i][col["country"]] = (" " + code, code + " ", " " + code + " ")[n % 3]
    for i in take(pool, rng, 5):
        rows[i][col["country"]] = ""
    for i in take(pool, rng, 3):
        rows[i][col["country"]] = "NULL"
    for i in take(pool, rng, 4):
        rows[i][col["signup_date"]] = ""
    for i in take(pool, rng, 6):
        rows[i][col["segment"]] = ""
    return customers, rows


# --- orders ------------------------------------------------------------------------------------


def order_status(rng: Rng, order_date: dt.date) -> str:
    age = (EXPORT_DATE - order_date).days
    if age <= 3:
        return rng.weighted([("placed", 70), ("shipped", 25), ("cancelled", 5)])
    if age <= 14:
        return rng.weighted([("placed", 5), ("shipped", 45), ("delivered", 45), ("cancelled", 5)])
    return rng.weighted([("delivered", 86), ("returned", 8), ("cancelled", 6)])


def order_amount_cents(rng: Rng, segment: str, factor_percent: int, currency: str) -> int:
    items = rng.weighted([(1, 50), (2, 28), (3, 14), (4, 8)])
    quantity = rng.between(2, 20) if segment == "enterprise" else 1
    usd_cents = sum(rng.weighted(PRICES_CENTS) for _ in range(items)) * quantity
    if usd_cents < 5_000:
        usd_cents += 495  # shipping
    cents = usd_cents * factor_percent // 100
    if currency == "JPY":  # no minor unit
        cents = cents // 100 * 100
    return cents


def make_orders(rng: Rng, customers: list[Customer]) -> list[str]:
    # Some customers buy far more often than others.
    weighted_customers = [(c, 1 + rng.below(12) ** 2) for c in customers]
    first_day, last_day = dt.date(2023, 1, 1), dt.date(2024, 12, 31)

    drafts: list[tuple[dt.date, int, list[str]]] = []
    for n in range(N_ORDERS):
        customer = rng.weighted(weighted_customers)
        order_date = rng.date(max(first_day, customer.signup_date), last_day)
        _, currency, factor = COUNTRIES[customer.country]
        cents = order_amount_cents(rng, customer.segment, factor, currency)
        row = [
            "",  # order_id, assigned once sorted by date
            str(customer.customer_id),
            order_date.isoformat(),
            order_status(rng, order_date),
            money(cents),
            currency,
            rng.weighted(CHANNELS),
        ]
        drafts.append((order_date, n, row))
    drafts.sort(key=lambda d: (d[0], d[1]))
    rows = [row for _, _, row in drafts]
    for i, row in enumerate(rows):
        row[0] = str(FIRST_ORDER_ID + i)

    col = {name: i for i, name in enumerate(ORDER_COLUMNS)}
    last = len(rows) - 1  # the last line of the file is cut off inside a quote
    pool = list(range(last))

    # Parseable rows with one defect each.
    for n, i in enumerate(take(pool, rng, 15)):
        rows[i][col["customer_id"]] = str(N_CUSTOMERS + 1 + (n * 37) % 250)  # no such customer
    for i in take(pool, rng, 3):
        rows[i][col["customer_id"]] = ""
    for i in take(pool, rng, 2):
        rows[i][col["customer_id"]] = "NULL"
    bad_dates = ["2024-02-30", "2023-02-29", "2024-04-31", "2023-13-05", "2024-06-00"]
    for bad, i in zip(bad_dates, take(pool, rng, len(bad_dates)), strict=True):
        rows[i][col["order_date"]] = bad
    bad_statuses = ["shiped", "shiped", "shiped", "deliverd", "deliverd", "in_transit"]
    for bad, i in zip(bad_statuses, take(pool, rng, len(bad_statuses)), strict=True):
        rows[i][col["status"]] = bad
    for n, i in enumerate(take(pool, rng, 6)):
        amount = rows[i][col["amount"]]
        rows[i][col["amount"]] = amount.replace(".", ",") if n < 4 else "n/a"  # "12,50" is quoted
    for i in take(pool, rng, 7):
        rows[i][col["amount"]] = "-" + rows[i][col["amount"]]
    for i in take(pool, rng, 2):
        rows[i][col["amount"]] = ""
    for i in take(pool, rng, 1):
        rows[i][col["amount"]] = "NULL"
    for i in take(pool, rng, 4):
        rows[i][col["currency"]] = "NULL"
    for i in take(pool, rng, 25):
        rows[i][col["channel"]] = ""
    for i in take(pool, rng, 10):
        rows[i][col["channel"]] = "NULL"

    lines = [csv_line(row) for row in rows]

    # Lines that do not parse as a 7-field record.
    malformed = take(pool, rng, 11)
    for n, i in enumerate(malformed):
        r = rows[i]
        if n < 5:  # too few fields: the trailing columns were dropped
            lines[i] = ",".join(r[: 6 if n % 2 == 0 else 5]) + "\n"
        elif n < 8:  # too many fields: a decimal comma that nobody quoted
            lines[i] = ",".join([*r[:4], r[4].replace(".", ","), *r[5:]]) + "\n"
        elif n < 10:  # too many fields: an extra trailing column
            lines[i] = ",".join([*r, "promo"]) + "\n"
        else:  # too many fields: a trailing comma
            lines[i] = ",".join(r) + ",\n"
    r = rows[last]
    lines[last] = ",".join([*r[:4], '"' + r[4], *r[5:]]) + "\n"  # unterminated quote, then EOF

    # The same order sent twice: three exact copies, two re-sent later with a new status.
    out = list(lines)
    clean = [i for i in pool if i < last - 200]
    resend = take(clean, rng, 5)
    inserts: list[tuple[int, str]] = []
    for n, i in enumerate(resend):
        if n < 3:
            inserts.append((i + 1 + rng.below(40), lines[i]))
        else:
            r = list(rows[i])
            r[col["status"]] = "returned" if r[col["status"]] == "delivered" else "cancelled"
            inserts.append((i + 60 + rng.below(120), csv_line(r)))
    for position, line in sorted(inserts, reverse=True):
        out.insert(position, line)
    return out


def csv_line(row: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    return buffer.getvalue()


# --- files -------------------------------------------------------------------------------------


def render() -> dict[str, bytes]:
    rng = Rng(SEED)
    customers, customer_rows = make_customers(rng)
    order_lines = make_orders(rng, customers)
    customers_csv = csv_line(CUSTOMER_COLUMNS) + "".join(csv_line(r) for r in customer_rows)
    orders_csv = csv_line(ORDER_COLUMNS) + "".join(order_lines)
    return {
        "customers.csv": customers_csv.encode("utf-8"),
        "orders.csv": orders_csv.encode("utf-8"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the files in data/ differ from what would be generated",
    )
    args = parser.parse_args(argv)

    stale = []
    for name, content in render().items():
        path = DATA_DIR / name
        if path.exists() and path.read_bytes() == content:
            continue
        stale.append(name)
        if not args.check:
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            print(f"wrote {path} ({len(content):,} bytes)")

    if args.check:
        if stale:
            print(
                f"stale: {', '.join(stale)} in {DATA_DIR} differ from the generator's output; "
                "run `python examples/quickstart/generate.py` and commit the result",
                file=sys.stderr,
            )
            return 1
        print("up to date")
    elif not stale:
        print(f"up to date: {DATA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
