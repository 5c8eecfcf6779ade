#!/usr/bin/env python3
"""Client-data host tree for offsite's scale benchmark (stdlib only).

    gen_scale.py generate ROOT [--mib 1280] [--seed 11]
    gen_scale.py mutate ROOT            # one simulated day

One tenant, no voice: the shape that makes a backup tool's costs grow with
the number of blobs and the size of directories.

    ROOT/<tenant>/db/dump.sql       one big pg_dump-like file of INSERT rows (40 % of the bytes)
    ROOT/<tenant>/chats/<uuid>.json chat transcripts, 1-50 KB (log-normal, median 5 KB)
    ROOT/<tenant>/emails/<uuid>.eml e-mails, 1-50 KB, ~20 % with a base64 attachment

1 280 MiB gives a 512 MiB dump and ~110 000 chats and e-mails in the two flat
directories; the generator's state is kept beside ROOT, in ROOT.state.json. `mutate` simulates one day: rewrites ~1 % of the dump's rows at
scattered places (streamed, constant memory), appends ~0.5 % rows, adds ~1 %
chats/e-mails and deletes ~0.2 % of the older ones. Deterministic for a seed
and a command sequence.
"""
import argparse
import base64
import datetime as dt
import json
import os
import random

SYL = ["ka", "lo", "mi", "ne", "ru", "ta", "ve", "zo", "pri", "sta", "con", "der",
       "bel", "mar", "tin", "gal", "for", "ser", "vic", "pen", "dal", "qua", "rel", "on"]
COMMON = ("the a to and of in is for on with your my we you i it this that be have please "
          "thanks order account invoice payment refund delivery call agent customer support "
          "ticket issue problem help number card plan upgrade cancel contract address phone "
          "email password reset login error today tomorrow waiting received sent confirm "
          "check update status credit charge bill discount offer").split()
FIRST = ["Anna", "Ben", "Carla", "David", "Eva", "Felix", "Greta", "Hugo", "Ines", "Jonas",
         "Karin", "Luca", "Maria", "Nils", "Olga", "Paul", "Rosa", "Sven", "Tara", "Vera"]
LAST = ["Meyer", "Schmidt", "Rossi", "Garcia", "Novak", "Dubois", "Jansen", "Silva",
        "Kowalski", "Nielsen", "Horvat", "Popescu", "Berg", "Costa", "Lind", "Moreau"]
STATUS = ["open", "pending", "waiting_customer", "escalated", "resolved", "closed"]
DISPO = ["answered", "voicemail", "transferred", "abandoned", "callback"]
END_MARK = "-- PostgreSQL database dump complete"


class Text:
    """A pool of sentences over a made-up vocabulary: compressible, not trivially."""

    def __init__(self, rng):
        words = set()
        while len(words) < 2500:
            words.add("".join(rng.choice(SYL) for _ in range(rng.randint(1, 4))))
        vocab = sorted(words) + COMMON * 6
        self.sent = []
        for _ in range(3000):
            w = [rng.choice(vocab) for _ in range(rng.randint(5, 18))]
            self.sent.append(" ".join(w).capitalize() + rng.choice(".?!."))

    def some(self, rng, k):
        return " ".join(rng.choice(self.sent) for _ in range(k))

    def until(self, rng, nbytes):
        out, n = [], 0
        while n < nbytes:
            s = rng.choice(self.sent)
            out.append(s)
            n += len(s) + 1
        return " ".join(out)


def state_path(root):
    """The generator's state lives beside the tree, so no backup sees it change."""
    return os.path.normpath(root) + ".state.json"


def ts_of(day, rng):
    return dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=rng.randint(25200, 72000))


def set_mtime(path, when):
    t = when.replace(tzinfo=dt.timezone.utc).timestamp()
    os.utime(path, (t, t))


def write(path, data, when):
    with open(path, "wb") as f:
        f.write(data)
    set_mtime(path, when)


def uid(rng):
    return "%032x" % rng.getrandbits(128)


def small_size(rng):
    return int(min(50_000, max(1_000, rng.lognormvariate(0, 0.9) * 5_000)))


def chat(tdir, tid, rng, text, day):
    u, target, t = uid(rng), small_size(rng), ts_of(day, rng)
    doc = {"chat_id": u, "tenant": tid, "channel": rng.choice(["web", "app", "whatsapp"]),
           "started_at": f"{t:%Y-%m-%dT%H:%M:%SZ}",
           "agent": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
           "customer": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
           "customer_id": rng.randint(1, 99999), "tags": rng.sample(COMMON, 3), "messages": []}
    size = 300
    while size < target:
        t += dt.timedelta(seconds=rng.randint(5, 240))
        m = {"ts": f"{t:%Y-%m-%dT%H:%M:%SZ}", "from": rng.choice(["agent", "customer"]),
             "text": text.some(rng, rng.randint(1, 3))}
        doc["messages"].append(m)
        size += len(m["text"]) + 60
    data = json.dumps(doc, indent=2).encode()
    write(os.path.join(tdir, "chats", u + ".json"), data, t)
    return len(data)


def email(tdir, tid, seed, rng, text, day):
    u, target, t = uid(rng), small_size(rng), ts_of(day, rng)
    frm = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    addr = frm.lower().replace(" ", ".") + f"{rng.randint(1, 999)}@mail.example"
    bnd = "=_" + u[:16]
    hdr = (f"Return-Path: <{addr}>\r\nMessage-ID: <{u}@mail.example>\r\n"
           f"Date: {t:%a, %d %b %Y %H:%M:%S} +0000\r\nFrom: {frm} <{addr}>\r\n"
           f"To: support@{tid}.example\r\nSubject: {text.some(rng, 1)[:70]}\r\n"
           f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{bnd}\"\r\n\r\n")
    attach = ""
    if rng.random() < 0.2 and target > 4000:
        raw = random.Random(f"{seed}:att:{u}").randbytes(int(target * 0.45))
        attach = (f"--{bnd}\r\nContent-Type: application/pdf; name=\"doc.pdf\"\r\n"
                  f"Content-Transfer-Encoding: base64\r\n\r\n"
                  + base64.encodebytes(raw).decode().replace("\n", "\r\n"))
    words, lines, cur = text.until(rng, max(200, target - len(hdr) - len(attach) - 200)).split(" "), [], ""
    for w in words:
        if len(cur) + len(w) > 75:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    data = (hdr + f"--{bnd}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + "\r\n".join(lines) + "\r\n" + attach + f"--{bnd}--\r\n").encode()
    write(os.path.join(tdir, "emails", u + ".eml"), data, t)
    return len(data)


def row(table, i, rng, text, day):
    t = f"{day} {rng.randint(7, 20):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}+00"
    if table == "customers":
        n = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        v = (f"{i}, '{n}', '{n.lower().replace(' ', '.')}{i}@mail.example', "
             f"'+49{rng.randint(1500000000, 1799999999)}', '{rng.choice(['basic', 'plus', 'pro'])}', "
             f"'{t}', '{text.some(rng, rng.randint(0, 2))}'")
    elif table == "tickets":
        v = (f"{i}, {rng.randint(1, 99999)}, {rng.randint(1, 200)}, '{rng.choice(STATUS)}', "
             f"{rng.randint(1, 4)}, '{text.some(rng, 1)[:90]}', '{t}', '{t}'")
    else:
        v = (f"{i}, {rng.randint(1, 99999)}, {rng.randint(1, 200)}, '{t}', "
             f"{rng.randint(5, 3600)}, '{rng.choice(DISPO)}', '{uid(rng)}.opus'")
    return f"INSERT INTO public.{table} VALUES ({v});"


def generate(a):
    end = dt.date(2026, 11, 25)
    rng = random.Random(f"{a.seed}:gen")
    tid = "t001-%06x" % rng.getrandbits(24)
    tdir = os.path.join(a.root, tid)
    for sub in ("db", "chats", "emails"):
        os.makedirs(os.path.join(tdir, sub))
    text = Text(random.Random(f"{a.seed}:text"))
    total = a.mib << 20
    dump = os.path.join(tdir, "db", "dump.sql")
    next_id = {}
    with open(dump, "w") as f:
        f.write(f"-- PostgreSQL database dump (tenant {tid})\nSET client_encoding = 'UTF8';\n\n")
        for table, share in (("customers", 0.25), ("tickets", 0.4), ("calls", 0.35)):
            budget, n, i = total * 0.4 * share, 0, 0
            while n < budget:
                i += 1
                day = end - dt.timedelta(days=int(50 * (1 - n / budget)))
                line = row(table, i, rng, text, day)
                f.write(line + "\n")
                n += len(line) + 1
            next_id[table] = i + 1
            f.write("\n")
        f.write(END_MARK + "\n")
    set_mtime(dump, dt.datetime.combine(end, dt.time(23, 30)))
    n = 0
    while n < total * 0.6:
        day = end - dt.timedelta(days=rng.randrange(50))
        if rng.random() < 0.5:
            n += chat(tdir, tid, rng, text, day)
        else:
            n += email(tdir, tid, a.seed, rng, text, day)
    with open(state_path(a.root), "w") as f:
        json.dump({"seed": a.seed, "tenant": tid, "day": str(end), "next_id": next_id}, f)


def mutate(a):
    with open(state_path(a.root)) as f:
        state = json.load(f)
    day = dt.date.fromisoformat(state["day"]) + dt.timedelta(days=1)
    state["day"] = str(day)
    tid, seed = state["tenant"], state["seed"]
    tdir = os.path.join(a.root, tid)
    rng = random.Random(f"{seed}:mutate:{day}")
    text = Text(random.Random(f"{seed}:text"))
    smalls = sorted(os.path.join(tdir, sub, n) for sub in ("chats", "emails")
                    for n in os.listdir(os.path.join(tdir, sub)))
    for _ in range(max(1, len(smalls) // 100)):
        if rng.random() < 0.5:
            chat(tdir, tid, rng, text, day)
        else:
            email(tdir, tid, seed, rng, text, day)
    old = sorted(smalls, key=lambda p: (os.stat(p).st_mtime, p))[:len(smalls) // 2]
    for p in rng.sample(old, max(1, len(smalls) // 500)):
        os.remove(p)
    dump = os.path.join(tdir, "db", "dump.sql")
    rows = 0
    with open(dump) as src, open(dump + ".tmp", "w") as out:
        for line in src:
            if line.startswith("INSERT INTO public."):
                rows += 1
                if rng.random() < 0.01:
                    table = line[len("INSERT INTO public."):].split(" ", 1)[0]
                    rid = int(line.split("VALUES (", 1)[1].split(",", 1)[0])
                    line = row(table, rid, rng, text, day) + "\n"
            elif line.startswith(END_MARK):
                for _ in range(max(1, rows // 200)):
                    table = rng.choice(["tickets", "calls", "calls", "customers"])
                    out.write(row(table, state["next_id"][table], rng, text, day) + "\n")
                    state["next_id"][table] += 1
            out.write(line)
    os.replace(dump + ".tmp", dump)
    set_mtime(dump, dt.datetime.combine(day, dt.time(23, 30)))
    with open(state_path(a.root), "w") as f:
        json.dump(state, f)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("root")
    g.add_argument("--mib", type=int, default=1280)
    g.add_argument("--seed", type=int, default=11)
    m = sub.add_parser("mutate")
    m.add_argument("root")
    a = p.parse_args()
    if a.cmd == "generate":
        if os.path.exists(a.root) and os.listdir(a.root):
            raise SystemExit(f"{a.root} is not empty")
        os.makedirs(a.root, exist_ok=True)
        generate(a)
    else:
        mutate(a)


if __name__ == "__main__":
    main()
