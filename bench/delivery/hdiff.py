#!/usr/bin/env python3
"""HDiffPatch through its PyPI wrapper, as a command for run.sh to time.

    hdiff.py diff zstd|lzma2 OLD NEW PATCH
    hdiff.py apply OLD PATCH OUT

The wrapper works on whole byte strings (old, new and patch in memory), unlike
HDiffPatch's own streaming `hpatchz` (not installable here), so its apply RSS
is an upper bound of what HDiffPatch needs.
"""

import sys

import hdiffpatch


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def main(argv):
    if len(argv) == 6 and argv[1] == "diff":
        # As in HDiffPatch's README comparison: zstd 21 or lzma2, 16 MiB window.
        if argv[2] == "zstd":
            config = hdiffpatch.ZStdConfig(level=21, window=24)
        else:
            config = hdiffpatch.Lzma2Config(level=9, window=24)
        patch = hdiffpatch.diff(read(argv[3]), read(argv[4]), config, validate=False)
        with open(argv[5], "wb") as handle:
            handle.write(patch)
        return 0
    if len(argv) == 5 and argv[1] == "apply":
        with open(argv[4], "wb") as handle:
            handle.write(hdiffpatch.apply(read(argv[2]), read(argv[3])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
