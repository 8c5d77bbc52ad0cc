"""What the virtual router's harness modules share: the board's layout, the failure and
its checks."""

MiB = 1 << 20
# (offset, size) of the disk partitions, as build.sh/disk.py lay them out.
ENV_PART = (1 * MiB, 0x4000)
SLOT_PART = {"A": (2 * MiB, 16 * MiB), "B": (18 * MiB, 16 * MiB)}
# The flash file (nand.img): each slot's NAND partition (mtd0, mtd1), as build.sh/disk.py lay it.
NAND_PART = {"A": (0, 16 * MiB), "B": (16 * MiB, 16 * MiB)}
ERASE_BLOCK = 128 << 10
BAD_BLOCKS = {"A": (5,), "B": (6,)}  # per partition (nandsim's badblocks=5,134 in guest/init)
BOOTLIMIT = 3
STATE_FILE = "/overlay/fwguard/state.json"  # state_dir (guest/config.toml): the running slot's overlay


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def update_kind(state):
    return state["update"]["state"]


def state_summary(st):
    return "update=%s known_good=%s denylist=%s history=%s" % (
        update_kind(st), st.get("known_good"), [d["version"] for d in st["denylist"]],
        [(h["event"], h.get("version")) for h in st["history"]])
