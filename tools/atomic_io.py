"""Atomic outputs for argen's Python tools (the same rule as the `argen` CLI, design.md §11).

Every output is first written to a temporary file in its destination directory and fsynced;
only when *all* outputs of a run are ready are they renamed into place (os.replace, atomic on
POSIX within a directory). A failure (full disk, `ulimit -f`, an exception in a writer) removes
the temporary files and leaves every existing file byte for byte as it was. Two outputs on one
path, or an output that is one of the inputs, are refused before anything is written.

    with Outputs(inputs=[checkpoint]) as out:
        save_file(tensors, out.path("model.safetensors"))   # writes the temporary file
        out.write_text("model.json", text)
    # both renamed into place here, only if the block raised nothing
"""
import os
import tempfile


def _key(path):
    """Identity of a file: (device, inode) if it exists, else its normalised absolute path."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        parent = os.path.dirname(os.path.abspath(path))
        return ("path", os.path.join(os.path.realpath(parent), os.path.basename(path)))


class OutputError(Exception):
    """An output path that collides with another output or an input, or cannot be written."""


class Outputs:
    """Stages outputs as temporary files and renames them all on success (see module doc)."""

    def __init__(self, inputs=()):
        self._inputs = [p for p in inputs if os.path.exists(p)]
        self._staged = []  # (tmp, dest)

    def _check(self, dest):
        k = _key(dest)
        for _, other in self._staged:
            if _key(other) == k:
                raise OutputError(f"{dest}: two outputs of this run would write the same file")
        for i in self._inputs:
            if _key(i) == k:
                raise OutputError(f"{dest}: the output is the input {i}; choose another path")
        parent = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(parent):
            raise OutputError(f"{dest}: directory {parent} does not exist")
        if os.path.isdir(dest):
            raise OutputError(f"{dest}: is a directory")

    def check(self, *dests):
        """Checks destinations up front, before any work (raises OutputError)."""
        seen = []
        for d in dests:
            self._check(d)
            if _key(d) in seen:
                raise OutputError(f"{d}: two outputs of this run would write the same file")
            seen.append(_key(d))

    def path(self, dest):
        """A temporary path beside `dest` to write to; renamed onto `dest` at the end."""
        dest = os.path.realpath(dest) if os.path.islink(dest) else dest
        self._check(dest)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".",
                                   suffix=".tmp", dir=os.path.dirname(os.path.abspath(dest)))
        os.close(fd)
        # mkstemp creates 0600; give the output the mode a plain open() would (0666 & ~umask).
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        self._staged.append((tmp, dest))
        return tmp

    def write_bytes(self, dest, data):
        with open(self.path(dest), "wb") as f:
            f.write(data)

    def write_text(self, dest, text):
        self.write_bytes(dest, text.encode("utf-8"))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                for tmp, _ in self._staged:
                    with open(tmp, "rb+") as f:
                        os.fsync(f.fileno())
                for tmp, dest in self._staged:
                    os.replace(tmp, dest)
                for d in {os.path.dirname(os.path.abspath(dst)) for _, dst in self._staged}:
                    try:
                        fd = os.open(d, os.O_RDONLY)
                        try:
                            os.fsync(fd)
                        finally:
                            os.close(fd)
                    except OSError:
                        pass
                self._staged = []
        finally:
            for tmp, _ in self._staged:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            self._staged = []
        return False


def write_json(dest, obj, **kw):
    """Writes one JSON file atomically."""
    import json
    with Outputs() as out:
        out.write_text(dest, json.dumps(obj, **kw) + "\n")
