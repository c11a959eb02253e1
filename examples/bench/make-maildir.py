#!/usr/bin/env python3
"""Write a benchmark data set: one Maildir, and the same messages as an mbox.

    make-maildir.py --out DIR [--force] [--count N] [--seed S] [--profile small|big]
                    [--min-size OCTETS --max-size OCTETS] [--no-mbox]

Writes, under DIR:
  Maildir/{cur,new,tmp}  every message in new/, as a delivery agent leaves it, named
                         <time>.M<n>P<seed>.bench,S=<octets on disk>,W=<octets in POP3>
                         (W= counts CRLF line ends, as LIST reports), mtime <time>;
  mbox                   the same messages for popa3d (unless --no-mbox): a "From " line
                         before each, a blank line after it.

Sizes (octets on disk, exact):
  small  uniform over 500 .. 4,000: a mail client's ordinary text messages;
  big    spread evenly on a log scale over 1 MB .. 10 MB (the first 1 MB, the last
         10 MB): a message with a base64 attachment;
  --min-size/--max-size  log-uniform between the two (equal: every message that size).

What every message is like (the same for the same arguments, on any machine):
  * the headers of a delivered message (Return-Path, Received, Date, From, To, Subject,
    Message-ID, MIME); LF line ends, no CR, no NUL, ends with LF;
  * up to 64 KiB a text/plain body of lines of words; larger, multipart/mixed with a
    short text part and a base64 attachment of random octets in 76-character lines;
  * about one message in four has body lines that start with "." (among them "." and
    ".." alone), so a server has to dot-stuff them;
  * no line starts with "From ", so the mbox needs no quoting and both servers serve
    the very same octets.

Python 3.9 or later, standard library only.
"""

import argparse
import base64
import math
import os
import random
import shutil
import sys
import time

WORDS = (
    "about account agenda answer april archive attached backup because before below "
    "budget build change check client copy customer data deploy design disk draft "
    "during each email file find first follow forward friday group have help here "
    "holiday index invoice issue just kernel last later leave list load mail mailbox "
    "march meeting message monday month network next note notes number office order "
    "other paper please point print project queue quick ready really release report "
    "review schedule second send server since soon status still support team thanks "
    "their there these thing think this thursday ticket today tomorrow tuesday update "
    "user version week what when where which while will with work would write year"
).split()
NAMES = ["Ada", "Boris", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana", "Ines",
         "Jonas", "Kai", "Lena", "Marek", "Nora", "Omar", "Paula", "Ravi", "Sofia"]
DOMAINS = ["example.com", "example.net", "example.org", "mail.example.com"]
DOT_LINES = [".", "..", ".profile was changed", "... and so on", ". a lone dot first"]
ATTACHMENTS = [("scan.pdf", "application/pdf"), ("photos.zip", "application/zip"),
               ("backup.tar.gz", "application/gzip"), ("slides.odp",
               "application/vnd.oasis.opendocument.presentation")]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
          "Dec"]
TEXT_LIMIT = 64 * 1024   # larger messages carry an attachment
BASE64_WIDTH = 76        # RFC 2045's line length


def date_822(t):
    g = time.gmtime(t)
    return "%s, %d %s %d %02d:%02d:%02d +0000" % (
        DAYS[g.tm_wday], g.tm_mday, MONTHS[g.tm_mon - 1], g.tm_year, g.tm_hour,
        g.tm_min, g.tm_sec)


def date_ctime(t):
    g = time.gmtime(t)
    return "%s %s %2d %02d:%02d:%02d %d" % (
        DAYS[g.tm_wday], MONTHS[g.tm_mon - 1], g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec,
        g.tm_year)


def sizes(args, rng):
    """The size in octets of each message, in order."""
    n = args.count
    if args.min_size is not None or args.max_size is not None:
        lo = args.min_size if args.min_size is not None else args.max_size
        hi = args.max_size if args.max_size is not None else args.min_size
        if not 0 < lo <= hi:
            sys.exit("make-maildir.py: need 0 < --min-size <= --max-size")
        return [round(math.exp(rng.uniform(math.log(lo), math.log(hi)))) for _ in range(n)]
    if args.profile == "small":
        return [rng.randint(500, 4000) for _ in range(n)]
    return [round(1e6 * 10 ** (i / max(1, n - 1))) for i in range(n)]


def words_line(rng, width):
    """A line of words, about `width` characters, never starting with "From "."""
    out = []
    length = -1
    while length < width:
        w = rng.choice(WORDS)
        out.append(w)
        length += len(w) + 1
    line = " ".join(out)
    if rng.random() < 0.3:
        line = line.capitalize() + "."
    return line


def text(rng, octets, dots):
    """Text of exactly `octets` octets (ASCII), LF line ends, ending in LF if not empty."""
    lines = []
    left = octets
    while left > 100:
        if lines and rng.random() < 0.12:
            line = ""
        elif dots and rng.random() < 0.05:
            line = rng.choice(DOT_LINES)
        else:
            line = words_line(rng, rng.randint(30, 72))
        lines.append(line)
        left -= len(line) + 1
    if dots and left > 3:
        lines.append(".")   # at least one line that is a lone dot
        left -= 2
    if left > 0:
        # The last line fills the size exactly: words cut to length (no trailing space).
        line = words_line(rng, left)[: left - 1].rstrip(" ")
        line += "x" * (left - 1 - len(line))
        lines.append(line)
    return "".join(line + "\n" for line in lines)


def message(rng, seq, seed, t, octets):
    """One message of exactly `octets` octets (as UTF-8 on disk, LF line ends)."""
    name = rng.choice(NAMES)
    sender = "%s@%s" % (name.lower(), rng.choice(DOMAINS))
    dots = rng.random() < 0.25
    head = [
        "Return-Path: <%s>" % sender,
        "Received: from mx.%s ([192.0.2.%d])\n\tby mx.bench.example with ESMTP id %08X;"
        " %s" % (sender.split("@")[1], rng.randint(1, 254), rng.getrandbits(32),
                 date_822(t)),
        "Date: %s" % date_822(t - rng.randint(5, 600)),
        "From: %s <%s>" % (name, sender),
        "To: bench@bench.example",
        "Subject: %s" % words_line(rng, rng.randint(10, 40)).capitalize(),
        "Message-ID: <%d.%d.%08x@bench.example>" % (seed, seq, rng.getrandbits(32)),
        "MIME-Version: 1.0",
    ]
    if octets <= TEXT_LIMIT:
        head += ["Content-Type: text/plain; charset=us-ascii",
                 "Content-Transfer-Encoding: 7bit"]
        top = "\n".join(head) + "\n\n"
        if len(top) > octets:
            sys.exit("make-maildir.py: %d octets is too small for a message" % octets)
        return top + text(rng, octets - len(top), dots)

    boundary = "bench-%d-%d-%08x" % (seed, seq, rng.getrandbits(32))
    head.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
    filename, ctype = rng.choice(ATTACHMENTS)
    top = "\n".join(head) + "\n\nThis is a message in MIME format.\n\n"
    text_head = ("--%s\nContent-Type: text/plain; charset=us-ascii\n"
                 "Content-Transfer-Encoding: 7bit\n\n" % boundary)
    file_head = ("--%s\nContent-Type: %s; name=\"%s\"\nContent-Transfer-Encoding: base64\n"
                 "Content-Disposition: attachment; filename=\"%s\"\n\n"
                 % (boundary, ctype, filename, filename))
    tail = "--%s--\n" % boundary
    room = octets - len(top) - len(text_head) - len(file_head) - len(tail)
    # The attachment takes all but 300 .. 2,000 octets, which go to the text part.
    encoded_room = room - rng.randint(300, 2000)
    raw = rng.randbytes(encoded_room // (BASE64_WIDTH + 1) * BASE64_WIDTH // 4 * 3)
    encoded = base64.b64encode(raw).decode("ascii")
    attachment = "".join(encoded[i:i + BASE64_WIDTH] + "\n"
                         for i in range(0, len(encoded), BASE64_WIDTH))
    body_text = text(rng, room - len(attachment) - 1, dots) + "\n"
    return top + text_head + body_text + file_head + attachment + tail


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 usage=argparse.SUPPRESS)
    ap.add_argument("--out", required=True, help="the data set's directory")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    ap.add_argument("--count", type=int, default=50, help="messages (default 50)")
    ap.add_argument("--seed", type=int, default=1, help="the same seed, the same data")
    ap.add_argument("--profile", choices=["small", "big"], default="small")
    ap.add_argument("--min-size", type=int, help="smallest message, octets")
    ap.add_argument("--max-size", type=int, help="largest message, octets")
    ap.add_argument("--no-mbox", action="store_true", help="write no mbox")
    args = ap.parse_args()
    if args.count < 1:
        sys.exit("make-maildir.py: --count must be at least 1")

    if os.path.lexists(args.out):
        if not args.force:
            sys.exit("make-maildir.py: %s exists (--force replaces it)" % args.out)
        shutil.rmtree(args.out)
    maildir = os.path.join(args.out, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub))

    rng = random.Random(args.seed)
    mbox = None if args.no_mbox else open(os.path.join(args.out, "mbox"), "wb")
    start = 1_700_000_000 + args.seed * 100_000
    total = 0
    with_dots = 0
    for seq, octets in enumerate(sizes(args, rng), 1):
        t = start + seq * 30
        data = message(rng, seq, args.seed, t, octets).encode("ascii")
        assert len(data) == octets and b"\r" not in data and b"\0" not in data
        assert not data.startswith(b"From ") and b"\nFrom " not in data
        lines = data.count(b"\n")
        if data.startswith(b".") or b"\n." in data:
            with_dots += 1
        path = os.path.join(maildir, "new", "%d.M%dP%d.bench,S=%d,W=%d"
                            % (t, seq, args.seed, octets, octets + lines))
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (t, t))
        if mbox:
            mbox.write(b"From bounces@bench.example %s\n" % date_ctime(t).encode("ascii"))
            mbox.write(data)
            mbox.write(b"\n")
        total += octets
    if mbox:
        mbox.close()
    print("%s: %d messages, %d octets, %d with lines that start with a dot"
          % (args.out, args.count, total, with_dots))


if __name__ == "__main__":
    main()
