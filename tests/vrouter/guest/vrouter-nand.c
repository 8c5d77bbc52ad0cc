/* The virtual router's flash file: the NAND chip (nandsim) keeps its pages in RAM, so the
 * board keeps them on a virtio disk of its own (the flash file, nand.img on the host) across
 * power-offs. At boot, before anything attaches the chip, `load` programs every page the
 * file holds; at a reboot or a harness power cut, with the board's processes stopped,
 * `save` reads the chip back into the file. Each MTD partition has its region of the file,
 * in the order given; an erased page is all 0xff there, as it reads on the chip.
 *
 *   vrouter-nand load FLASH_FILE MTD_NUM...
 *   vrouter-nand save FLASH_FILE MTD_NUM...
 *
 * Bad blocks (the chip's, marked by nandsim's `badblocks`) are skipped both ways: nothing is
 * programmed into them, and they are saved as erased.
 */
#include <errno.h>
#include <fcntl.h>
#include <mtd/mtd-user.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void die(const char *what, const char *path) {
    fprintf(stderr, "vrouter-nand: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static int all_erased(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0xff)
            return 0;
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[1], "load") && strcmp(argv[1], "save"))) {
        fprintf(stderr, "usage: vrouter-nand load|save FLASH_FILE MTD_NUM...\n");
        return 2;
    }
    int save = !strcmp(argv[1], "save");
    int file = open(argv[2], save ? O_RDWR : O_RDONLY);
    if (file < 0)
        die("open", argv[2]);
    off_t at = 0;
    long pages = 0, bad = 0;
    for (int a = 3; a < argc; a++) {
        char dev[32];
        snprintf(dev, sizeof dev, "/dev/mtd%s", argv[a]);
        int mtd = open(dev, save ? O_RDONLY : O_RDWR);
        struct mtd_info_user info;
        if (mtd < 0)
            die("open", dev);
        if (ioctl(mtd, MEMGETINFO, &info) < 0)
            die("MEMGETINFO", dev);
        unsigned char *block = malloc(info.erasesize);
        for (off_t off = 0; off < (off_t)info.size; off += info.erasesize, at += info.erasesize) {
            loff_t o = off;
            int is_bad = ioctl(mtd, MEMGETBADBLOCK, &o);
            if (is_bad < 0)
                die("MEMGETBADBLOCK", dev);
            if (is_bad) {
                bad++;
                if (save) {
                    memset(block, 0xff, info.erasesize);
                    if (pwrite(file, block, info.erasesize, at) != (ssize_t)info.erasesize)
                        die("write", argv[2]);
                }
                continue;
            }
            if (save) {
                if (pread(mtd, block, info.erasesize, off) != (ssize_t)info.erasesize)
                    die("read", dev);
                if (pwrite(file, block, info.erasesize, at) != (ssize_t)info.erasesize)
                    die("write", argv[2]);
                for (unsigned p = 0; p < info.erasesize; p += info.writesize)
                    pages += !all_erased(block + p, info.writesize);
            } else {
                if (pread(file, block, info.erasesize, at) != (ssize_t)info.erasesize)
                    die("read", argv[2]);
                for (unsigned p = 0; p < info.erasesize; p += info.writesize) {
                    if (all_erased(block + p, info.writesize))
                        continue;
                    if (pwrite(mtd, block + p, info.writesize, off + p) != (ssize_t)info.writesize)
                        die("program", dev);
                    pages++;
                }
            }
        }
        free(block);
        close(mtd);
    }
    if (save && fsync(file) < 0)
        die("fsync", argv[2]);
    printf("%s %ld programmed pages, %ld bad blocks skipped\n", save ? "saved" : "loaded", pages, bad);
    return 0;
}
