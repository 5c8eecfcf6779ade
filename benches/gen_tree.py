#!/usr/bin/env python3
"""Storage-host-like test tree for offsite's quick start and benchmark (stdlib only).

    gen_tree.py generate ROOT [--mib 2048] [--tenants 20] [--seed 7]
    gen_tree.py mutate ROOT            # one simulated day

Layout under ROOT: <tenant>/voice/YYYY/MM/DD/<id>.opus (random bytes, 100 KB-5 MB),
<tenant>/db/dump.sql (SQL INSERT lines), <tenant>/chats/<id>.json and
<tenant>/emails/<id>.eml (1-50 KB text). About 75 % of the bytes are voice.
`mutate` adds ~2 % recordings dated the next day, rewrites ~1 % of the dump's
lines at scattered places, appends ~0.5 % rows, adds ~1 % chats/e-mails and
deletes a few old ones. Deterministic for a given seed and command sequence.
"""
import argparse
import datetime as dt
import json
import os
import random

WORDS = ("call order refund invoice agent customer account card plan upgrade cancel ticket "
         "status waiting received confirm thanks please help number delivery address phone "
         "today tomorrow again problem payment contract support billing credit offer").split()
NAMES = ["Aino", "Bo", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jana"]
STATE = ".gen_state.json"


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def row(rng, table, i, day):
    who = f"{rng.choice(NAMES)} {rng.choice(NAMES)}son"
    return (f"INSERT INTO {table} (id, who, at, note, amount) VALUES ({i}, '{who}', "
            f"'{day} {rng.randrange(24):02d}:{rng.randrange(60):02d}', "
            f"'{sentence(rng, rng.randint(3, 14))}', {rng.randrange(100000) / 100});")


def write(path, data, when):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    ts = dt.datetime.combine(when, dt.time(12)).replace(tzinfo=dt.timezone.utc).timestamp()
    os.utime(path, (ts, ts))


def voice(rng, tdir, day):
    size = int(min(5_000_000, max(100_000, rng.lognormvariate(0, 0.8) * 650_000)))
    name = f"{rng.getrandbits(64):016x}.opus"
    write(os.path.join(tdir, "voice", f"{day:%Y/%m/%d}", name), rng.randbytes(size), day)
    return size


def small(rng, tdir, day):
    target = int(min(50_000, max(1_000, rng.lognormvariate(0, 0.9) * 5_000)))
    if rng.random() < 0.5:
        msgs, n = [], 0
        while n < target:
            m = {"from": rng.choice(["agent", "customer"]), "text": sentence(rng, rng.randint(4, 20))}
            msgs.append(m)
            n += len(m["text"]) + 40
        data = json.dumps({"tenant": os.path.basename(tdir), "day": str(day), "messages": msgs}, indent=1)
        path = os.path.join(tdir, "chats", f"{rng.getrandbits(64):016x}.json")
    else:
        body = []
        while sum(len(b) for b in body) < target:
            body.append(sentence(rng, rng.randint(6, 18)))
        data = (f"From: {rng.choice(NAMES)} <c@example.com>\r\nTo: support@example.com\r\n"
                f"Date: {day}\r\nSubject: {sentence(rng, 5)}\r\n\r\n" + "\r\n".join(body) + "\r\n")
        path = os.path.join(tdir, "emails", f"{rng.getrandbits(64):016x}.eml")
    write(path, data.encode(), day)
    return len(data)


def generate(a):
    rng = random.Random(a.seed)
    end = dt.date(2026, 11, 25)
    total = a.mib * 2**20
    state = {"seed": a.seed, "day": str(end), "tenants": {}}
    for k in range(a.tenants):
        tid = f"t{k:02d}-{rng.getrandbits(24):06x}"
        tdir = os.path.join(a.root, tid)
        share = total / a.tenants
        vb = 0
        while vb < share * 0.75:
            vb += voice(rng, tdir, end - dt.timedelta(days=rng.randrange(50)))
        lines, n, i = ["-- dump of " + tid], 0, 0
        while n < share * 0.10:
            i += 1
            lines.append(row(rng, rng.choice(["tickets", "calls", "customers"]), i, end))
            n += len(lines[-1]) + 1
        write(os.path.join(tdir, "db", "dump.sql"), ("\n".join(lines) + "\n").encode(), end)
        sb = 0
        while sb < share * 0.15:
            sb += small(rng, tdir, end - dt.timedelta(days=rng.randrange(50)))
        state["tenants"][tid] = {"next_id": i + 1}
    with open(os.path.join(a.root, STATE), "w") as f:
        json.dump(state, f)


def mutate(a):
    with open(os.path.join(a.root, STATE)) as f:
        state = json.load(f)
    day = dt.date.fromisoformat(state["day"]) + dt.timedelta(days=1)
    state["day"] = str(day)
    for tid, ts in sorted(state["tenants"].items()):
        rng = random.Random(f"{state['seed']}:{tid}:{day}")
        tdir = os.path.join(a.root, tid)
        recs = sorted(os.path.join(d, n) for d, _, ns in os.walk(os.path.join(tdir, "voice")) for n in ns)
        for _ in range(max(1, len(recs) // 50)):
            voice(rng, tdir, day)
        for p in recs[:rng.randint(0, 2)]:
            os.remove(p)
        smalls = sorted(os.path.join(d, n) for sub in ("chats", "emails")
                        for d, _, ns in os.walk(os.path.join(tdir, sub)) for n in ns)
        for _ in range(max(1, len(smalls) // 100)):
            small(rng, tdir, day)
        for p in rng.sample(smalls, max(1, len(smalls) // 500)):
            os.remove(p)
        dump = os.path.join(tdir, "db", "dump.sql")
        with open(dump) as f:
            lines = f.read().rstrip("\n").split("\n")
        for i in rng.sample(range(1, len(lines)), max(1, len(lines) // 100)):
            lines[i] = row(rng, "tickets", int(lines[i].split("VALUES (")[1].split(",")[0]), day)
        for _ in range(max(1, len(lines) // 200)):
            lines.append(row(rng, "calls", ts["next_id"], day))
            ts["next_id"] += 1
        write(dump, ("\n".join(lines) + "\n").encode(), day)
    with open(os.path.join(a.root, STATE), "w") as f:
        json.dump(state, f)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("root")
    g.add_argument("--mib", type=int, default=2048)
    g.add_argument("--tenants", type=int, default=20)
    g.add_argument("--seed", type=int, default=7)
    m = sub.add_parser("mutate")
    m.add_argument("root")
    a = p.parse_args()
    if a.cmd == "generate":
        if os.path.exists(a.root) and os.listdir(a.root):
            raise SystemExit(f"{a.root} is not empty")
        generate(a)
    else:
        mutate(a)


if __name__ == "__main__":
    main()
