#!/usr/bin/env python3
"""Seed inputs for the fuzz targets (other than index_verify), written to corpus/<target>/.

Run from fuzz/: `python3 seed.py`. The U-Boot images come from `mkenvimage` and the GRUB
blocks from `grub-editenv` when they are installed (u-boot-tools, grub-common); the rest is
built here. Seeds are named seed-*, so a rerun replaces them and leaves the fuzzer's inputs.
"""
import os
import shutil
import struct
import subprocess
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# fw_env.config: lines as boards ship them (OpenWrt's uboot-envtools defaults and others).
for name, text in {
    "nor-single": "# MTD device name\tDevice offset\tEnv. size\tFlash sector size\tNumber of sectors\n"
    "/dev/mtd1\t\t0x0000\t\t0x10000\t\t0x10000\n",
    "linksys": "/dev/mtd1 0x0 0x20000 0x20000\n",
    "nor-redundant": "/dev/mtd3 0x0 0x10000 0x10000\n/dev/mtd4 0x0 0x10000 0x10000\n",
    "nand-sectors": "/dev/mtd2 0x0 0x20000 0x20000 2\n/dev/mtd2 0x40000 0x20000 0x20000 2\n",
    "mmc-redundant": "# eMMC\n/dev/mmcblk0 0x88000 0x20000\n/dev/mmcblk0 0xa8000 0x20000 # copy 2\n",
    "ubi": "/dev/ubi0_0 0x0 0x1f000 0x1f000\n/dev/ubi0_1 0x0 0x1f000 0x1f000\n",
    "decimal": "/dev/mmcblk0boot1 1048576 16384\n",
    "file": "/var/lib/fwguard/uboot.env 0 0x4000\n",
    "overlap": "/dev/mtd1 0 0x4000\n/dev/mtd1 0x2000 0x4000\n",
    "bad-number": "/dev/mtd1 0x0 0x2000z\n",
}.items():
    put("fw_env_config", name, text)


# Linksys s_env: byte 0 = geometry (bits 0-1 erase 256/512/1024/2048, bits 2-3 blocks - 1,
# bits 4-6 write 1/4/16/32/64/256/512/2048, bit 7 records mode), 4 bytes count to append,
# then the raw partition or (records mode) a list of counts.
MAGIC = 0x20110811


def record(count, stride):
    r = struct.pack("<III", MAGIC, count, (MAGIC + count) & 0xFFFFFFFF)
    return r + b"\xff" * (stride - len(r))


def geometry(erase, blocks, write, records):
    return bytes([
        [256, 512, 1024, 2048].index(erase)
        | (blocks - 1) << 2
        | [1, 4, 16, 32, 64, 256, 512, 2048].index(write) << 4
        | (0x80 if records else 0)
    ])


one = struct.pack("<I", 1)
put("linksys_bootcount", "nor-empty", geometry(256, 1, 1, False) + one)
put("linksys_bootcount", "nor-3", geometry(256, 1, 1, False) + one + b"".join(record(c, 16) for c in (1, 2, 3)))
put("linksys_bootcount", "nand-2", geometry(1024, 2, 256, False) + one + record(1, 256) + record(2, 256))
put("linksys_bootcount", "nand-full", geometry(512, 1, 256, False) + one + record(4, 256) + record(5, 256))
put("linksys_bootcount", "reset-0", geometry(256, 2, 16, False) + one + record(3, 16) + record(0, 16))
put("linksys_bootcount", "foreign", geometry(256, 1, 16, False) + one + record(1, 16) + struct.pack("<I", 0x12345678))
put("linksys_bootcount", "records", geometry(512, 2, 32, True) + struct.pack("<IIII", 7, 1, 2, 3))
put("linksys_bootcount", "records-hole", geometry(256, 1, 16, True) + struct.pack("<IIIII", 0, 1, 2, 0xFFFFFFFF, 9))


# U-Boot environment images: mkenvimage when installed, else built here the same way.
UBOOT_ENV = b"bootcmd=run ab_boot\nboot_slot=A\nbootcount=0\nbootlimit=3\nupgrade_available=0\nbootdelay=2\n"


def uboot_image(size, redundant, pad):
    data = b"".join(l + b"\0" for l in sorted(UBOOT_ENV.split(b"\n")[:-1])) + b"\0"
    hl = 5 if redundant else 4
    data = data + bytes([pad]) * (size - hl - len(data))
    return struct.pack("<I", zlib.crc32(data)) + (b"\x01" if redundant else b"") + data


with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "env.txt")
    with open(src, "wb") as f:
        f.write(UBOOT_ENV)
    for name, size, args in [
        ("single-1k", 1024, []),
        ("redundant-1k", 1024, ["-r"]),
        ("single-4k-pad0", 4096, ["-p", "0"]),
        ("redundant-2k-pad0", 2048, ["-r", "-p", "0"]),
    ]:
        out = os.path.join(tmp, "env.img")
        if shutil.which("mkenvimage"):
            subprocess.run(["mkenvimage", "-s", str(size), *args, "-o", out, src], check=True)
            with open(out, "rb") as f:
                put("uboot_env", name, f.read())
        else:
            put("uboot_env", name, uboot_image(size, "-r" in args, 0 if "-p" in args else 0xFF))
    put("uboot_env", "tiny", uboot_image(16, False, 0))

# GRUB environment blocks: grub-editenv when installed.
    grub = [
        ("empty", []),
        ("ab", ["boot_slot=A", "boot_trial=0", "boot_count=0"]),
        ("trial", ["boot_slot=B", "boot_trial=1", "boot_count=2", "fell_back_from="]),
        ("escapes", ["note=a\\b\nc", "saved_entry=gnulinux-advanced>gnulinux-5.10"]),
    ]
    for name, sets in grub:
        blk = os.path.join(tmp, "grubenv")
        if os.path.exists(blk):
            os.remove(blk)
        if shutil.which("grub-editenv"):
            subprocess.run(["grub-editenv", blk, "create"], check=True)
            if sets:
                subprocess.run(["grub-editenv", blk, "set", *sets], check=True)
            with open(blk, "rb") as f:
                data = f.read()
        else:
            body = b"".join(s.replace("\\", "\\\\").replace("\n", "\\\n").encode() + b"\n" for s in sets)
            data = b"# GRUB Environment Block\n" + body
            data += b"#" * (1024 - len(data))
        put("grub_env", name, data)
    put("grub_env", "lines", "boot_slot=A\n#comment\nx=1\n")
    put("grub_env", "pairs", "boot_slot\0A\0boot_trial\0001\0")

# The vendor command's get-active answers (docs/script-backend.md).
for name, text in {
    "full": '{"active": "A", "next": "B", "trial": true, "bootcount": 1, "bootlimit": 3, "fell_back_from": null}\n',
    "minimal": '{"active":"B","next":"B"}',
    "fell-back": '{"active": "A", "next": "A", "trial": false, "bootcount": 0, "bootlimit": 5, "fell_back_from": "B"}',
    "unknown-field": '{"active": "A", "next": "A", "extra": 1}',
    "bad-slot": '{"active": "C", "next": "A"}',
}.items():
    put("script_answer", name, text)


# DNS responses, built by hand: header, question, answers.
def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"


def response(id, flags, question, answers, qtype=1):
    h = struct.pack(">HHHHHH", id, flags, 1, len(answers), 0, 0)
    q = name(question) + struct.pack(">HH", qtype, 1)
    return h + q + b"".join(answers)


def a_record(ip):
    return b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 300, 4) + bytes(ip)


def aaaa_record(ip):
    return b"\xc0\x0c" + struct.pack(">HHIH", 28, 1, 300, 16) + bytes(ip)


def cname(target):
    t = name(target)
    return b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 300, len(t)) + t


for n, data in {
    "a": response(0xBEEF, 0x8180, "fwguard.test", [a_record([192, 0, 2, 1])]),
    "a-2": response(0x1234, 0x8180, "example.org", [a_record([192, 0, 2, 1]), a_record([192, 0, 2, 2])]),
    "aaaa": response(0xBEEF, 0x8180, "example.org", [aaaa_record([0x20, 1, 0xd, 0xb8] + [0] * 11 + [1])], 28),
    "cname": response(0xBEEF, 0x8180, "www.example.org", [cname("example.org"), a_record([192, 0, 2, 7])]),
    "nxdomain": response(0xBEEF, 0x8183, "nope.test", []),
    "servfail": response(0xBEEF, 0x8182, "fwguard.test", []),
    "refused": response(0xBEEF, 0x8185, "fwguard.test", []),
    "truncated": response(0xBEEF, 0x8380, "fwguard.test", []),
    "no-answer": response(0xBEEF, 0x8180, "fwguard.test", []),
    "query": response(0xBEEF, 0x0100, "fwguard.test", []),
    "name": b"updates.fwguard.test.",
}.items():
    put("dns_answer", n, data)
