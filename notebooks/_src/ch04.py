"""04 — OverlayFS: layers of files, copy-up, whiteouts, a container's read/write layer."""

# ruff: noqa: E501  (markdown tables and links cannot be wrapped)

from skeleton import exercise

FILE = "04-overlayfs.ipynb"

# fmt: off
GOAL = r"""
# 04 · OverlayFS: layers and the read/write layer

> *"OverlayFS é um sistema de arquivos que permite a criação de camadas de arquivos, facilitando a
> criação de imagens Docker."*
> — OverlayFS is a filesystem that makes layers of files, which is what Docker images are made of.
>
> *"Existe uma camada de READ ONLY e uma camada de READ/WRITE, que é temporária e é descartada
> quando o container é removido."*
> — there is a READ ONLY layer and a READ/WRITE layer, which is temporary and is thrown away when
> the container is removed.

## Goal

At the end of this chapter you will have:

- **stacked two directories by hand** with `mount -t overlay` and seen one merged view, where the
  upper layer wins;
- watched a **copy-up**: changing a lower file through the merged view copies the *whole* file
  into the upper directory, and the lower file does not change;
- found a **whiteout** (a deleted lower file: a character device 0/0 in the upper directory) and
  an **opaque directory** (an extended attribute), and seen why a user namespace needs
  `userxattr`;
- opened a **real container's read/write layer** on the host, matched it with `pycont diff`, and
  seen it disappear with the container.
"""
ALLOWS = r"""
OverlayFS is mounted with `mount(2)`, which needs `CAP_SYS_ADMIN`. The by-hand experiments
(sections 1–4) mount inside a container run by root, in the host's user namespace (pycont's
default as root, as Docker's), and given that capability back with `--cap-add SYS_ADMIN`: they
need pycont to run as **root**. A real container (section 5) also works rootless, with an overlay
mounted in its own user namespace. The next cell asks the probe, removes
what an interrupted run of this chapter left behind, and defines helpers that print folders
like `ls -l` (without owners and dates, which change).
"""
NEEDS = ("root", "overlay")
SETUP = r"""
import os
import stat

import pycont
from pycont import overlay
from pycont.course import Chapter, upper_dir
from pycont.images import whiteouts


def entry(path, name):
    # One line of ls -l: type and permissions, size (or "major, minor" for a device), name.
    st = os.lstat(path)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        size = f"{os.major(st.st_rdev)}, {os.minor(st.st_rdev)}"
    else:
        size = "" if stat.S_ISDIR(st.st_mode) else str(st.st_size)
    line = f"  {stat.filemode(st.st_mode)} {size:>8}  {name}"
    if stat.S_ISREG(st.st_mode) and name.endswith(".txt"):
        with open(path) as f:
            line += f"  {f.read().strip()!r}"
    return line


def tree(top, rel=""):
    # Every entry below top, each folder followed by what it holds; text files with their text.
    if not rel:
        print(f"{os.path.basename(top)}/")
    for name in sorted(os.listdir(os.path.join(top, rel))):
        path, sub = os.path.join(top, rel, name), os.path.join(rel, name)
        is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
        print(entry(path, sub + ("/" if is_dir else "")))
        if is_dir:
            tree(top, sub)


def check_mounts():
    # Did anything we mounted leak into the host's mount table? (proc(5): mountinfo)
    with open("/proc/self/mountinfo") as f:
        print("the host's mount table mentions ch04-lab:", LAB in f.read())

"""
START = r"""
LAB = course.scratch("ch04-lab")  # lower1, lower2, upper, work, merged: /lab in containers
print("overlay in a user namespace (section 5, rootless):", pycont.probe().overlay_in_userns.ok)
"""
SECTIONS = [
    ("md", r"""
## 1. Two directories, one view

OverlayFS (`Documentation/filesystems/overlayfs.rst`) presents a **merged** directory made of:

- one or more **lower** directories, read-only, listed top first: `lowerdir=TOP:…:BOTTOM`;
- one **upper** directory, where every change lands;
- a **work** directory, on the same filesystem as upper, where overlay prepares changes before
  moving them into place atomically.

Make two lower directories in a host folder, `LAB` (the chapter's own: it lives in this run's
session folder, next to its containers). Both hold a `shared.txt`; `lower1` also has a `docs`
folder and a 1 MB file.
"""),
    ("code", r"""
for d in ("lower1", "lower1/docs", "lower2", "upper", "work", "merged"):
    os.makedirs(f"{LAB}/{d}")
files = {
    "lower1/a.txt": "from lower1\n",
    "lower1/shared.txt": "lower1's version\n",
    "lower1/docs/one.txt": "one\n",
    "lower1/docs/two.txt": "two\n",
    "lower2/b.txt": "from lower2\n",
    "lower2/shared.txt": "lower2's version\n",
}
for name, text in files.items():
    with open(f"{LAB}/{name}", "w") as f:
        f.write(text)
with open(f"{LAB}/lower1/big.bin", "wb") as f:
    f.write(b"x" * 1_000_000)
for d in ("lower1", "lower2", "upper"):
    tree(f"{LAB}/{d}")
"""),
    ("md", r"""
pycont's `overlay.Stack` writes the mount options the runtime uses for every container. Ask it
for ours, with the paths the container will see (`/lab` is `LAB`, bind-mounted):
"""),
    ("code", r"""
lab_stack = overlay.Stack(lowers=("/lab/lower2", "/lab/lower1"), upper="/lab/upper",
                          work="/lab/work", merged="/lab/merged")
print("mount -t overlay overlay -o", lab_stack.options(), lab_stack.merged)
"""),
    ("md", r"""
Now mount it. Not in this notebook's kernel: a mount there would go into the host's mount
table. Instead, inside a container (it has its own mount namespace, chapter 02) that sees the lab
folder as `/lab` (`-v`, a bind mount, chapter 07). Its root is the host's root (as root, pycont
gives a container no user namespace, chapter 02), but like Docker's it lacks `CAP_SYS_ADMIN`, so
`mount` would be refused (`capabilities(7)`, chapter 10): `--cap-add SYS_ADMIN` gives it back,
and Docker's seccomp profile, which pycont applies, then allows `mount(2)` too. `lower2` is on
top. (In `-v {LAB}:/lab`, IPython replaces `{LAB}` with the variable's value, as in any magic.)
"""),
    ("code", r"""
%%container --rm --name ch04-mount --cap-add SYS_ADMIN -v {LAB}:/lab busybox
mount -t overlay overlay -o lowerdir=/lab/lower2:/lab/lower1,upperdir=/lab/upper,workdir=/lab/work /lab/merged
echo "mounted:"
grep ' /lab/merged ' /proc/self/mountinfo | grep -o 'lowerdir=[^,]*,upperdir=[^,]*,workdir=[^,]*'
cd /lab/merged
echo "the merged view:"
find . -mindepth 1 | sort
echo "the text files:"
grep . *.txt docs/*.txt
"""),
    ("code", r"""
check_mounts()
print("pycont.overlay.lookup: where overlay finds each name (top layer first)")
LOWERS = (f"{LAB}/lower2", f"{LAB}/lower1")
for name in ("a.txt", "b.txt", "shared.txt", "docs"):
    print(f"  {name:<10} ->", [os.path.relpath(p, LAB) for p in overlay.lookup(LOWERS, name)])
"""),
    ("md", r"""
**What happened.** The merged directory shows the **union** of the layers: `a.txt` and `docs`
from `lower1`, `b.txt` from `lower2`. Where both layers have a name, the **upper-most** one wins:
`shared.txt` is `lower2`'s, and `lower1`'s copy is hidden, not merged. Directories *are* merged:
`docs` would show the entries of every layer that has one. That lookup is all an image is, at run
time: each image layer is one lower directory (chapter 05). The mount existed only in the
container's mount namespace, and ended with it: the host's mount table never saw it, but the
directories are still on the host, unchanged — the upper is still empty.

---
## 2. Copy-up: the first write copies the whole file

Mount the same layers again, and change two **lower** files through the merged view: append a
line to `a.txt`, and one byte to the 1 MB `big.bin`.
"""),
    ("code", r"""
%%container --rm --name ch04-copyup --cap-add SYS_ADMIN -v {LAB}:/lab busybox
mount -t overlay overlay -o lowerdir=/lab/lower2:/lab/lower1,upperdir=/lab/upper,workdir=/lab/work /lab/merged
echo "changed through the merged view" >> /lab/merged/a.txt
printf x >> /lab/merged/big.bin
echo "a.txt in the merged view:"
cat /lab/merged/a.txt
"""),
    ("code", r"""
check_mounts()
tree(f"{LAB}/upper")
tree(f"{LAB}/lower1")
"""),
    ("md", r"""
**What happened.** Lower layers are never written. On the first write to a lower file, overlay
**copies it up**: it copies the file, with its owner, mode and extended attributes, into the upper
directory (building it in `workdir` first, then renaming it into place), and the write goes to the
copy. From then on the upper copy hides the lower file. The copy is of the **whole file**: one
byte appended to `big.bin` cost 1,000,001 bytes in the upper directory. That is why containers
that rewrite big files (databases) keep them in volumes (chapter 07), not in their read/write
layer. `lower1` is unchanged: any number of containers can share it.

---
## 3. Whiteouts: deleting what you cannot change

Delete `b.txt`, which lives in `lower2`, through the merged view:
"""),
    ("code", r"""
%%container --rm --name ch04-whiteout --cap-add SYS_ADMIN -v {LAB}:/lab busybox
mount -t overlay overlay -o lowerdir=/lab/lower2:/lab/lower1,upperdir=/lab/upper,workdir=/lab/work /lab/merged
rm /lab/merged/b.txt
echo "the merged view now:"
ls /lab/merged
"""),
    ("code", r"""
tree(f"{LAB}/upper")
print("lower2 still has b.txt:", os.path.exists(f"{LAB}/lower2/b.txt"))
st = os.lstat(f"{LAB}/upper/b.txt")
print("upper/b.txt is a character device:", stat.S_ISCHR(st.st_mode))
print("its device number is 0/0:", st.st_rdev == 0,
      f"(major {os.major(st.st_rdev)}, minor {os.minor(st.st_rdev)})")
print("pycont's whiteouts.is_whiteout:", whiteouts.is_whiteout(st))
"""),
    ("md", r"""
**What happened.** The lower file cannot be removed (the layer is read-only and shared), so
overlay records the deletion in the upper directory as a **whiteout**: a character device with
device number 0/0 and the deleted file's name — `ls -l` shows it as `c--------- … 0, 0 b.txt`.
A lookup that meets a whiteout stops there: the name does not exist in the merged view, whatever
the layers below hold. (Since Linux 5.8 anyone may create a 0/0 device with `mknod(2)`, exactly
for this use.) Image layers, which are tar files, cannot rely on device nodes, so the OCI image
format writes the same fact as an empty file `.wh.b.txt`; pycont's `pycont.images.whiteouts`
translates between the two when it unpacks or commits a layer (chapter 05).

---
## 4. Opaque directories: deleted, then made again

Delete the whole `docs` folder and make a new `docs` with one new file. If overlay only whited out
`docs`, the new folder would still *merge* with `lower1/docs` and show `one.txt` and `two.txt`
again. Look:
"""),
    ("code", r"""
%%container --rm --name ch04-opaque --cap-add SYS_ADMIN -v {LAB}:/lab busybox
mount -t overlay overlay -o lowerdir=/lab/lower2:/lab/lower1,upperdir=/lab/upper,workdir=/lab/work /lab/merged
rm -r /lab/merged/docs
mkdir /lab/merged/docs
echo three > /lab/merged/docs/three.txt
echo "docs in the merged view:"
ls /lab/merged/docs
"""),
    ("code", r"""
tree(f"{LAB}/upper")
opaque = [n for n in os.listxattr(f"{LAB}/upper/docs") if n.endswith("overlay.opaque")]
print("overlay's xattrs on upper/docs:", opaque)
for name in opaque:
    print(f"{name} =", os.getxattr(f"{LAB}/upper/docs", name))
if not opaque:  # rootless: the container has a user namespace of its own (see below)
    print("none: a container in a user namespace cannot set trusted.* xattrs")
print("lower1/docs is unchanged:", sorted(os.listdir(f"{LAB}/lower1/docs")))
"""),
    ("md", r"""
**What happened.** `upper/docs` is a new, real directory marked **opaque** with the extended
attribute `trusted.overlay.opaque=y` (`xattr(7)`): a lookup that meets an opaque directory does
not look further down, so `lower1/docs` is hidden as a whole. In an OCI layer tar the same mark
is an empty file `docs/.wh..wh..opq`.

### In a user namespace: `user.overlay.*` and `userxattr`

`trusted.*` attributes can only be set with `CAP_SYS_ADMIN` in the host's *initial* user
namespace (`xattr(7)`). The containers above had it: run by root, they have no user namespace of
their own. A container that has one — rootless, always; as root, with `--userns private`
(chapter 02) — cannot, whatever capabilities it holds in its own namespace. Since Linux 5.11 an
overlay can be mounted inside a user namespace, with the mount option **`userxattr`**: overlay
then keeps its marks in `user.overlay.*` instead. Try both, in a container with its own user
namespace (`--userns private`, and `--cap-add SYS_ADMIN` to mount), each with a fresh upper
directory:
"""),
    ("code", r"""
for d in ("upper-u", "work-u", "upper-x", "work-x"):  # u: with userxattr, x: without
    os.makedirs(f"{LAB}/{d}")
"""),
    ("code", r"""
%%container --rm --name ch04-userns --userns private --cap-add SYS_ADMIN -v {LAB}:/lab busybox
echo "1) without userxattr:"
mount -t overlay overlay -o lowerdir=/lab/lower1,upperdir=/lab/upper-x,workdir=/lab/work-x /lab/merged
rm -r /lab/merged/docs && echo "   docs removed"
umount /lab/merged
echo "2) with userxattr:"
mount -t overlay overlay -o lowerdir=/lab/lower1,upperdir=/lab/upper-u,workdir=/lab/work-u,userxattr /lab/merged
rm -r /lab/merged/docs && mkdir /lab/merged/docs && echo "   docs removed and made again"
"""),
    ("code", r"""
check_mounts()
docs = f"{LAB}/upper-u/docs"
print("overlay's xattrs on upper-u/docs:", [n for n in os.listxattr(docs) if "overlay" in n])
print("user.overlay.opaque =", os.getxattr(docs, "user.overlay.opaque"))
"""),
    ("md", r"""
**What happened.** Without `userxattr`, the container's root could mount the overlay, but overlay
could not write its `trusted.*` marks (the kernel log says *"failed to set xattr on upper … try
mounting with 'userxattr' option"*), so deleting a lower directory failed with `EIO`. With
`userxattr`, the same directory became opaque through `user.overlay.opaque`. pycont mounts the
root of every container that has its own user namespace (rootless, or `--userns private`) with
`userxattr`; as root, by default, without it (section 5 shows which). When a layer is unpacked it
sets both marks, so any container can use it.

What did we change, in `docker diff` terms? `pycont.overlay.changes` reads an upper directory
against its lower ones — the code behind `pycont diff` — and works on our hand-made overlay too:
"""),
    ("code", r"""
for change in overlay.changes(f"{LAB}/upper", LOWERS, userxattr=False):
    print(change)
"""),
    ("md", r"""
`A` added, `C` changed, `D` deleted: `b.txt` and the old `docs` files are whiteouts or hidden by
the opaque directory, `a.txt` and `big.bin` are copies, `docs/three.txt` is new. The upper
directory alone says everything that changed; that is what `commit` turns into a new image layer
(chapters 05 and 07).

---
## 5. A real container's read/write layer

> *"O conteiner criado a partir de uma imagem imutável, ou seja, não pode ser alterado."*
> — the container is created from an immutable image: the image cannot be changed.

A container's root filesystem is exactly this: the image's layers as the lower directories, and an
empty upper directory of its own. Start one and change some files in it:
"""),
    ("code", r"""
box = pycont.run("busybox", ["sleep", "1000"], name="ch04-box", detach=True)
script = ("echo hello > /root/notes.txt; "                     # a new file
          "echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd; "  # a changed image file
          "rm /bin/vi; "                                         # a deleted image file
          "tail -n 1 /etc/passwd; ls /bin/vi")
print(box.exec(["sh", "-c", script]).output)
"""),
    ("md", r"""
`inspect()` tells where its layers are (`docker inspect`'s `GraphDriver`, same field names):
"""),
    ("code", r"""
data = box.inspect()["GraphDriver"]["Data"]
for key, value in data.items():
    print(f"{key:<9} {value}")
"""),
    ("code", r"""
with open(f"/proc/{box.pid}/mountinfo") as f:
    root = next(line for line in f if line.split()[4] == "/")
print("the container's / :", root.split(" - ")[1].split()[0], "with",
      "userxattr" if "userxattr" in root else "no userxattr")
init_layer, image_layer = data["LowerDir"].split(":")
print("its lowerdirs are LowerDir, the init layer then the image's:",
      f"lowerdir={data['LowerDir']}," in root)
print("the init layer holds:", " ".join(sorted(os.listdir(os.path.join(init_layer, "etc")))))
print("MergedDir, seen from the host's mount namespace, is empty:",
      os.listdir(data["MergedDir"]) == [])
"""),
    ("md", r"""
The upper directory, from the host: only what the container changed.
"""),
    ("code", r"""
tree(data["UpperDir"])
passwd = os.path.join(image_layer, "etc/passwd")
with open(passwd) as f:
    print("the image's /etc/passwd has the new user:", "app:x:1000" in f.read())
print("the image still has /bin/vi:", os.path.lexists(os.path.join(image_layer, "bin/vi")))
"""),
    ("code", r"""
%pycont diff ch04-box
"""),
    ("md", r"""
**What happened.** `/root/notes.txt` is new, in the upper directory only. `/etc/passwd` was
copied up whole, then changed; the image's copy is untouched. `/bin/vi` is a whiteout. The
folders that hold changes (`/bin`, `/etc`, `/root`) are in the upper directory too, as copies of
the image's. `pycont diff` (`docker diff`) is `Container.diff()`: it reads the upper directory
against the image's layers with `pycont.overlay.changes`. The overlay is mounted in the
container's mount namespace, so `MergedDir` looks empty from the host. Run by root, the
container has no user namespace of its own, so its overlay is mounted without `userxattr` and
keeps its marks in `trusted.overlay.*` (rootless, it would say `userxattr`: its root cannot set
`trusted.*`, section 4); the **image layer**, the lower directory, is shared, never
written. Above it sits the container's **init layer** (docker's `-init` layer): empty mount
points for `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, which pycont binds from the
container's folder (chapter 08), so they never show in the read/write layer, in `diff` or in a
commit.

Now remove the container:
"""),
    ("code", r"""
box.remove(force=True)
print("the upper directory exists:", os.path.exists(data["UpperDir"]))
print("the image's layer exists:", os.path.isdir(image_layer))
print("a new container has /bin/vi:",
      pycont.run("busybox", ["ls", "/bin/vi"], rm=True, name="ch04-box").exit_code == 0)
"""),
    ("md", r"""
**What happened.** The read/write layer is a folder of the container (`<root>/containers/<id>/upper`):
removing the container deletes it, with every change it held — the seed's *"temporária e é
descartada quando o container é removido"*. The image's layer is unchanged, so the next container
starts from the same files, `/bin/vi` included. To keep data, use a volume (chapter 07); to keep
the changes *as an image*, commit the upper directory as a new layer (chapters 05 and 07).
"""),
]
EXERCISES_INTRO = r"""
The next cell starts a container for exercises 2–4.
"""
EXERCISES_SETUP = r"""
ex = pycont.run("busybox", ["sleep", "1000"], name="ch04-ex", detach=True)
EX_UPPER = upper_dir(ex)
EX_LOWER = ex.inspect()["GraphDriver"]["Data"]["LowerDir"].split(":")[-1]  # the image's
print(ex.name, "is", ex.status)
"""
EXERCISES = [
    exercise(
        r"""
### Exercise 1 — the other order, and no upper

In the cell below, mount an overlay of the two lower directories in the **other** order
(`lower1` on top) and **without** `upperdir` and `workdir`; then `cat /lab/merged/shared.txt` and
try to create a file in `/lab/merged`. Set `answer1` to the text `shared.txt` shows, and
`answer1_writable` to whether creating the file worked.
""",
        (r"""
%%container --rm --name ch04-ex1 --cap-add SYS_ADMIN -v {LAB}:/lab busybox
# your commands here
""", r"""
answer1 = None           # the text of /lab/merged/shared.txt, a str
answer1_writable = None  # True or False
"""),
        r"""
course.check("exercise 1",
             lambda: str(answer1).strip() == "lower1's version" and answer1_writable is False,
             "mount -t overlay overlay -o lowerdir=/lab/lower1:/lab/lower2 /lab/merged; the first "
             "lowerdir is the top one; what can an overlay with no upper directory write to?")
""",
        (r"""
%%container --rm --name ch04-ex1 --cap-add SYS_ADMIN -v {LAB}:/lab busybox
mount -t overlay overlay -o lowerdir=/lab/lower1:/lab/lower2 /lab/merged
cat /lab/merged/shared.txt
touch /lab/merged/new.txt
""", r"""
answer1 = "lower1's version"
answer1_writable = False   # touch: /lab/merged/new.txt: Read-only file system
"""),
        note=r"""
The first lower directory is the top one. Without an upper directory the overlay is mounted
read-only: there is nowhere to write (`overlayfs.rst`, "Multiple lower layers").
""",
    ),
    exercise(
        r"""
### Exercise 2 — find the whiteout

Delete `/etc/group` **inside** `ch04-ex` (with `ex.exec(...)`). Then set `answer2` to the **host
path** of the whiteout that records the deletion.
""",
        r"""
answer2 = None  # a host path, a str
""",
        r"""
def _whiteout_found():
    expected = os.path.join(EX_UPPER, "etc/group")
    return (isinstance(answer2, str) and os.path.lexists(answer2)
            and os.path.realpath(answer2) == os.path.realpath(expected)
            and whiteouts.is_whiteout(os.lstat(answer2)))


course.check("exercise 2", _whiteout_found,
             "delete it with ex.exec([...]); the whiteout lies in the container's upper directory, "
             "EX_UPPER, at the path the file had in the container")
""",
        r"""
ex.exec(["rm", "/etc/group"])
answer2 = os.path.join(EX_UPPER, "etc", "group")
""",
    ),
    exercise(
        r"""
### Exercise 3 — an opaque directory in a real container

Inside `ch04-ex`, delete the folder `/usr/sbin` with everything in it and make an empty
`/usr/sbin` again. Which extended attribute marks it opaque in the container's upper directory?
Set `answer3` to its name.
""",
        r"""
answer3 = None  # an xattr name, a str
""",
        r"""
def _opaque():
    folder = os.path.join(EX_UPPER, "usr/sbin")
    with open(f"/proc/{ex.pid}/mountinfo") as f:  # the container's root: userxattr or not?
        root = next(line for line in f if line.split()[4] == "/")
    expected = "user.overlay.opaque" if "userxattr" in root else "trusted.overlay.opaque"
    return (answer3 == expected and os.path.isdir(folder)
            and os.getxattr(folder, answer3) == b"y")


course.check("exercise 3", _opaque,
             "ex.exec(['sh', '-c', 'rm -r /usr/sbin && mkdir /usr/sbin']), then "
             "os.listxattr(os.path.join(EX_UPPER, 'usr/sbin')); is the container's overlay mounted "
             "with userxattr (section 5)?")
""",
        r"""
ex.exec(["sh", "-c", "rm -r /usr/sbin && mkdir /usr/sbin"])
answer3 = next(n for n in os.listxattr(os.path.join(EX_UPPER, "usr/sbin")) if n.endswith("opaque"))
# as root "trusted.overlay.opaque": no user namespace, no userxattr (rootless: "user.overlay.opaque")
""",
    ),
    exercise(
        r"""
### Exercise 4 — the price of a `chmod`

Inside `ch04-ex`, run `chmod 700 /bin/busybox`: only the file's mode changes, not one byte of its
content. How many bytes does the container's upper directory now hold for `/bin/busybox`? Set
`answer4` to that number, read from the host.
""",
        r"""
answer4 = None  # a number of bytes, an int
""",
        r"""
def _copied_up():
    upper = os.path.join(EX_UPPER, "bin/busybox")
    return (os.path.exists(upper) and answer4 == os.path.getsize(upper)
            and answer4 == os.path.getsize(os.path.join(EX_LOWER, "bin/busybox")))


course.check("exercise 4", _copied_up,
             "ex.exec(['chmod', '700', '/bin/busybox']), then os.path.getsize of bin/busybox in "
             "EX_UPPER; compare it with the image's copy in EX_LOWER")
""",
        r"""
ex.exec(["chmod", "700", "/bin/busybox"])
answer4 = os.path.getsize(os.path.join(EX_UPPER, "bin", "busybox"))
""",
        note=r"""
The whole binary, about 2 MB: a change of metadata copies the file up too. (Overlay's `metacopy=on`
option copies only the metadata until the data is written, but it is off by default and
must not be used with untrusted layers.)
""",
    ),
]
CLEANUP = r"""
check_mounts()
"""
QUESTIONNAIRE = r"""
1. In `lowerdir=/a:/b:/c`, which directory is on top? Two of them hold `x.txt`: which one do
   you see?
2. A container appends one line to a 500 MB log file that came with its image. What happens on
   disk, and how could it be avoided?
3. How does overlay record that a container deleted a file of its image? How does an OCI image
   layer record the same thing?
4. Why is a whiteout not enough when a directory is deleted and created again?
5. What does the mount option `userxattr` change, and which of pycont's containers need it?
6. Where is a container's read/write layer on the host, and what happens to it on `rm`?
7. Why can a hundred containers of the same image start fast and take little disk?

<details><summary>Answers</summary>

1. `/a`, the first one: lower directories are listed top first. You see `x.txt` from the
   upper-most layer that has it; the others are hidden.
2. Overlay copies the whole 500 MB file up into the container's upper directory before the write
   (copy-up), once. Keep such files in a volume (chapter 07), which is not part of the overlay.
3. Overlay: a character device with device number 0/0, with the file's name, in the upper
   directory. OCI: an empty file named `.wh.<name>` in the layer tar.
4. A whiteout hides the name, but a new directory of the same name in the upper layer would merge
   with the lower directory and show its old entries again. So the new directory is marked opaque
   (`trusted.overlay.opaque=y`, or `user.overlay.opaque=y`): lookups do not go below it.
5. Overlay keeps its metadata (opaque, redirects, origin) in `user.overlay.*` xattrs instead of
   `trusted.overlay.*`. Only the initial user namespace's `CAP_SYS_ADMIN` may set `trusted.*`;
   a container's root in its own user namespace may set `user.*`. So the containers that have a
   user namespace of their own need it: every rootless one, and as root those run with
   `--userns private`. A container run by root has none by default (as with Docker) and uses
   `trusted.*`.
6. In `<root>/containers/<id>/upper` (`inspect()["GraphDriver"]["Data"]["UpperDir"]`); removing
   the container deletes it, and everything written there.
7. Every container stacks the same read-only image layers, unpacked once on the host; each only
   gets an empty upper directory of its own. Nothing is copied until a container writes.
</details>
"""
READING = r"""
- [Overlay Filesystem](https://docs.kernel.org/filesystems/overlayfs.html)
  (`Documentation/filesystems/overlayfs.rst`) — upper and lower, copy-up, whiteouts and opaque
  directories, multiple lower layers, `userxattr`, `metacopy`.
- [`mount(8)`](https://man7.org/linux/man-pages/man8/mount.8.html) (section *Mount options for
  overlay*) and [`mount(2)`](https://man7.org/linux/man-pages/man2/mount.2.html).
- [`xattr(7)`](https://man7.org/linux/man-pages/man7/xattr.7.html) — the `trusted.` and `user.`
  namespaces; [`mknod(2)`](https://man7.org/linux/man-pages/man2/mknod.2.html) — the 0/0 whiteout
  device.
- OCI image spec, [Image Layer Filesystem Changeset](https://github.com/opencontainers/image-spec/blob/main/layer.md)
  — layers as tar diffs, `.wh.` whiteouts and `.wh..wh..opq`.
- Docker, [OverlayFS storage driver](https://docs.docker.com/engine/storage/drivers/overlayfs-driver/)
  — how docker lays out `lowerdir`, `upperdir` and `merged` per container.
- Julia Evans, [How containers work: overlayfs](https://jvns.ca/blog/2019/11/18/how-containers-work--overlayfs/).
"""
# fmt: on
