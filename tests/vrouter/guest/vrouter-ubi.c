/* The virtual router's own UBI tool (its busybox has none): attach an MTD partition, make a
 * volume with all the free space, put a block device on a volume (ubiblock, for the squashfs
 * root), detach, through the kernel's ioctls. Written apart from
 * fwguard's code, so that what fwguard's settings carry left on the NAND is judged by the
 * kernel through a second implementation.
 *
 *   vrouter-ubi attach MTD_NUM        prints the number of the new UBI device
 *   vrouter-ubi mkvol UBI_NUM NAME    a dynamic volume with all the free space
 *   vrouter-ubi block /dev/ubiX_Y     makes /dev/ubiblockX_Y (read-only)
 *   vrouter-ubi detach UBI_NUM
 */
#include <fcntl.h>
#include <mtd/ubi-user.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static long number(const char *path) {
    FILE *f = fopen(path, "r");
    long n = -1;
    if (!f || fscanf(f, "%ld", &n) != 1) {
        fprintf(stderr, "vrouter-ubi: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "attach")) {
        struct ubi_attach_req req;
        memset(&req, 0, sizeof req);
        req.ubi_num = UBI_DEV_NUM_AUTO;
        req.mtd_num = atoi(argv[2]);
        int fd = open("/dev/ubi_ctrl", O_RDONLY);
        if (fd < 0 || ioctl(fd, UBI_IOCATT, &req) < 0) {
            perror("vrouter-ubi: attach");
            return 1;
        }
        printf("%d\n", req.ubi_num);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "mkvol")) {
        char path[64];
        snprintf(path, sizeof path, "/sys/class/ubi/ubi%s/avail_eraseblocks", argv[2]);
        long blocks = number(path);
        snprintf(path, sizeof path, "/sys/class/ubi/ubi%s/eraseblock_size", argv[2]);
        long leb = number(path);
        struct ubi_mkvol_req req;
        memset(&req, 0, sizeof req);
        req.vol_id = UBI_VOL_NUM_AUTO;
        req.alignment = 1;
        req.bytes = (long long)blocks * leb;
        req.vol_type = UBI_DYNAMIC_VOLUME;
        req.name_len = strlen(argv[3]);
        strncpy(req.name, argv[3], UBI_MAX_VOLUME_NAME);
        snprintf(path, sizeof path, "/dev/ubi%s", argv[2]);
        int fd = -1;
        for (int i = 0; i < 100 && fd < 0; i++) {
            fd = open(path, O_RDWR);
            if (fd < 0)
                usleep(50000);
        }
        if (fd < 0 || ioctl(fd, UBI_IOCMKVOL, &req) < 0) {
            perror("vrouter-ubi: mkvol");
            return 1;
        }
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "block")) {
        struct ubi_blkcreate_req req;
        memset(&req, 0, sizeof req);
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0 || ioctl(fd, UBI_IOCVOLCRBLK, &req) < 0) {
            perror("vrouter-ubi: block");
            return 1;
        }
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "detach")) {
        int num = atoi(argv[2]);
        int fd = open("/dev/ubi_ctrl", O_RDONLY);
        if (fd < 0 || ioctl(fd, UBI_IOCDET, &num) < 0) {
            perror("vrouter-ubi: detach");
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "usage: vrouter-ubi attach MTD | mkvol UBI NAME | block /dev/ubiX_Y | detach UBI\n");
    return 2;
}
