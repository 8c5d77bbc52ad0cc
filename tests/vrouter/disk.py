#!/usr/bin/env python3
"""Assemble the virtual router's flash bank and disk from the pieces build.sh made.

    disk.py OUT_DIR SLOT_A_IMAGE SLOT_A_UBI

flash1.img: 64 MiB of erased NOR with U-Boot's default env at its start.
disk.img:   34 MiB, MBR: p1 env (1 MiB at 1 MiB) | p2 slot A (16 MiB) | p3 slot B (16 MiB).
            No partition both slots mount (a WRT32X has none). The layout is also in vr_common.py.
nand.img:   32 MiB flash file: mtd0 (slot A, 16 MiB) then mtd1 (slot B, 16 MiB), erased, with
            SLOT_A_UBI written into mtd0 erase block by erase block, skipping the bad block as
            a NAND flasher does (guest/init gives nandsim the same bad blocks).
"""
import struct
import sys

MiB = 1 << 20
ERASE_BLOCK = 128 << 10
NAND_PART = 16 * MiB
BAD_BLOCKS = (5, 134)  # nandsim's badblocks= in guest/init: block 5 of mtd0, block 6 of mtd1
PARTS = [(1 * MiB, 1 * MiB, 0xDA), (2 * MiB, 16 * MiB, 0xDA), (18 * MiB, 16 * MiB, 0xDA)]


def nand(out, ubi):
    flash = bytearray(b"\xff" * (2 * NAND_PART))
    data = open(ubi, "rb").read()
    block = 0
    for at in range(0, len(data), ERASE_BLOCK):
        while block in BAD_BLOCKS:
            block += 1
        assert (block + 1) * ERASE_BLOCK <= NAND_PART, f"{ubi} does not fit slot A's partition"
        flash[block * ERASE_BLOCK : block * ERASE_BLOCK + ERASE_BLOCK] = data[at : at + ERASE_BLOCK].ljust(ERASE_BLOCK, b"\xff")
        block += 1
    open(f"{out}/nand.img", "wb").write(flash)


def main(out, slot_a, slot_a_ubi):
    nand(out, slot_a_ubi)
    env = open(f"{out}/fit/uboot-env.bin", "rb").read()
    flash = bytearray(b"\xff" * (64 * MiB))
    flash[: len(env)] = env
    open(f"{out}/flash1.img", "wb").write(flash)

    disk = bytearray(34 * MiB)
    mbr = bytearray(512)
    struct.pack_into("<I", mbr, 440, 0x46574744)
    for i, (start, size, typ) in enumerate(PARTS):
        e = 446 + 16 * i
        mbr[e + 1 : e + 4] = b"\xfe\xff\xff"
        mbr[e + 4] = typ
        mbr[e + 5 : e + 8] = b"\xfe\xff\xff"
        struct.pack_into("<II", mbr, e + 8, start // 512, size // 512)
    mbr[510:512] = b"\x55\xaa"
    disk[:512] = mbr
    for (start, size, _), path in zip(PARTS, [f"{out}/fit/ab-env.bin", slot_a, None]):
        if path is None:
            continue
        data = open(path, "rb").read()
        assert len(data) <= size, f"{path} ({len(data)} bytes) does not fit its {size}-byte partition"
        disk[start : start + len(data)] = data
    open(f"{out}/disk.img", "wb").write(disk)


if __name__ == "__main__":
    main(*sys.argv[1:])
