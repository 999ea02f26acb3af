"""05 — images: layers, versions that share them, removing them, registries."""

# ruff: noqa: E501  (markdown tables and links cannot be wrapped)

from skeleton import exercise

FILE = "05-images-and-registries.ipynb"

# fmt: off
GOAL = r"""
# 05 · Images and registries

> *"Imagem é um conjunto de camadas (Layers) que são empilhadas uma sobre a outra."*
> — an image is a set of layers stacked one on top of the other.
>
> *"Digamos que a imagem node:14 possui 10 camadas, e a imagem node:16 possui 10 camadas, e 5
> camadas são comuns entre as duas imagens, então a imagem node:16 irá criar 5 camadas novas e irá
> compartilhar as 5 camadas comuns com a imagem node:14."*
> — say node:14 has 10 layers and node:16 has 10 layers, 5 of them in common: node:16 then adds 5
> new layers and shares the 5 common ones with node:14.

## Goal

At the end of this chapter you will have:

- taken an image apart: its **manifest**, its **config** and its **layers**, each a file named by
  its own SHA-256 (content addressing), and the unpacked layer that containers stack;
- built **two versions of an application**, `myapp:v1` and `myapp:v2`, each one layer on top of
  the other, and seen that they **share** their common layers: same digests, stored once, so the
  second version costs only its new layer;
- removed images: `myapp:v1` while `myapp:v2` still needs its layers, and an image that a
  container uses (refused);
- run a **registry** on this machine, **pushed** `myapp:v2` to it (its layers compressed on the
  way, and **mounted**, not sent again, into a second repository), removed it locally and
  **pulled** it back: the same image id and layers, and a digest the registry gave it;
- asked the store to **check itself**: every blob hashed, every reference followed, nothing
  left over.
"""
ALLOWS = r"""
Images are files: listing, committing and removing them needs no privilege. Running the
containers needs namespaces (root, or rootless with user namespaces). **This machine has no
network**: Docker Hub (`docker.io`) cannot be reached, so `busybox` is built offline by pycont and
every other image here is made by you; the registry in section 5 runs on this machine, on the
loopback address only. The next cell removes what an interrupted run of this chapter left behind
(containers, images, the registry and its folder).
"""
NEEDS = ("namespaces",)
SETUP = r"""
import contextlib
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request

import pycont
from pycont.course import Chapter
from pycont.course.registry import LocalRegistry
from pycont.images import Store, resolve
"""
START = r"""
store = Store()  # this run's own store, in its session folder
resolve("busybox")  # built on first use: section 2 reads it before any container runs
registry = LocalRegistry(course.scratch("registry"))  # section 5: configuration, storage, log
print("the image store:", store.root)
"""
SECTIONS = [
    ("md", r"""
## 1. The images on this machine

`%pycont images` is `docker images` (or `docker image ls`). Its `CREATED` column changes with
the clock, so your output will differ from the one saved here.
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont images
"""),
    ("md", r"""
## 2. What an image is made of

`Store().get("busybox")` returns the image in full. Two JSON documents describe it:

- the **manifest** lists the image's parts — one config and the layers, bottom first — each by
  its media type, size and **digest**, the SHA-256 of its bytes;
- the **config** holds how to run it (`Cmd`, `Env`, `WorkingDir`), its `history` and, in
  `rootfs.diff_ids`, the digests of the *uncompressed* layers.

The image's **id** is the digest of its config; the manifest's digest is what
`busybox@sha256:…` names.
"""),
    ("code", r"""
rec = store.get("busybox")
print("image id (digest of the config):", rec.id)
print("manifest digest               :", rec.digest)
print(json.dumps(rec.manifest, indent=2))
"""),
    ("code", r"""
print(json.dumps(rec.config, indent=2))
"""),
    ("md", r"""
On disk, the store is an **OCI image layout** (OCI image-spec, `image-layout.md`): `index.json`
names the images, and every document and layer is a file in `blobs/sha256/`, **named by the
SHA-256 of its content**. Check that for busybox's three blobs:
"""),
    ("code", r"""
def blob_path(digest):
    return os.path.join(store.root, "blobs", "sha256", digest.split(":", 1)[1])


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


layer_digest = rec.manifest["layers"][0]["digest"]
for what, digest in (("manifest", rec.digest), ("config", rec.id), ("layer", layer_digest)):
    path = blob_path(digest)
    print(f"{what:<9} blobs/sha256/{digest[7:19]}…  {os.path.getsize(path):>8} bytes  "
          f"hash of the file = its name: {sha256_of(path) == digest}")
with open(os.path.join(store.root, "index.json")) as f:
    names = [e.get("annotations", {}).get("org.opencontainers.image.ref.name")
             for e in json.load(f)["manifests"]]
print("index.json names busybox:", "docker.io/library/busybox:latest" in names)
"""),
    ("md", r"""
The layer is a **tar archive** of files (OCI image-spec, `layer.md`). Its first entries:
"""),
    ("code", r"""
with tarfile.open(blob_path(layer_digest)) as tar:
    members = tar.getmembers()
for m in members[:8]:
    if m.issym():
        print(f"link  {m.name} -> {m.linkname}")
    elif m.isdir():
        print(f"dir   {m.name}")
    else:
        print(f"file  {m.name}  ({m.size} bytes)")
print(f"… {len(members)} entries in all")
"""),
    ("md", r"""
A tar cannot be stacked by overlay. So the store **unpacks each layer once**, into
`layers/<diff_id>/`, and that folder is the `lowerdir` of every container of every image that has
this layer (chapter 04):
"""),
    ("code", r"""
print("the unpacked layer:", rec.layers[0])
print("its name is the layer's diff_id:", os.path.basename(rec.layers[0]) == rec.diff_ids[0][7:])
print("it holds:", " ".join(sorted(os.listdir(rec.layers[0]))))
c = pycont.create("busybox", ["true"], name="ch05-run")
print("a busybox container's LowerDir ends with that folder:",
      c.inspect()["GraphDriver"]["Data"]["LowerDir"].split(":")[-1] == rec.layers[0])
c.remove()
"""),
    ("md", r"""
`%pycont history busybox` (`docker history`) lists the steps that made the image, one per layer,
newest first:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont history busybox
"""),
    ("md", r"""
**What happened.** An image is not one big file: it is a small graph of content-addressed files —
a manifest that points at a config and at layer tars. Because every name is the hash of the
content, a blob can be checked after any transfer, and two images that contain the same layer
refer to the **same** blob: it is stored, and unpacked, once. busybox has a single layer, built by
pycont from Debian's `busybox-static`, byte for byte the same on every machine (so its digests
above are the same as yours).

---
## 3. Two versions that share layers

> *"Temos a versão MyApp:v1 e a versão MyApp:v2, o container irá criar uma nova camada para a
> versão MyApp:v2, e irá compartilhar as camadas comuns entre as versões."*
> — with MyApp:v1 and MyApp:v2, v2 adds one new layer and shares the common layers.

Build `myapp:v1` the way `docker commit` does (chapter 07 has more on it): run a container of
busybox that adds `/app/version`, and commit its read/write layer as a new layer, with a default
command. Measure the store before and after.
"""),
    ("code", r"""
def store_bytes():
    # Bytes of every file in the store: blobs, unpacked layers, index (as du -sb, files only).
    total = 0
    for top, _dirs, files in os.walk(store.root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, name)).st_size
    return total


def kb(n):
    return f"{n / 1000:.1f} kB"


before = store_bytes()
c = pycont.run("busybox", ["sh", "-c", "mkdir /app && echo 'myapp version 1' > /app/version"],
               name="ch05-v1")
v1_id = c.commit("myapp:v1", message="add /app/version", changes=['CMD ["cat", "/app/version"]'])
c.remove()
after_v1 = store_bytes()
print("myapp:v1 id:", v1_id[:19] + "…")
print(pycont.run("myapp:v1", rm=True, name="ch05-run").output)
"""),
    ("md", r"""
Then `myapp:v2`, **from `myapp:v1`**: a container of v1 that changes the version and adds a
feature.
"""),
    ("code", r"""
c = pycont.run("myapp:v1", ["sh", "-c", "echo 'myapp version 2' > /app/version && "
                                        "echo 'a new feature' > /app/feature.txt"],
               name="ch05-v2")
v2_id = c.commit("myapp:v2", message="version 2: a new feature")
c.remove()
after_v2 = store_bytes()
print("myapp:v2 id:", v2_id[:19] + "…")
print(pycont.run("myapp:v2", rm=True, name="ch05-run").output)
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont history myapp:v2
"""),
    ("md", r"""
`history` shows three steps: busybox's layer, v1's, v2's. Compare the three images' layers by
their digests (`rootfs.diff_ids`, bottom first):
"""),
    ("code", r"""
recs = {name: store.get(name) for name in ("busybox", "myapp:v1", "myapp:v2")}
print(f"{'layer (diff_id)':<26}" + "".join(f"{name:>10}" for name in recs))
for diff_id in recs["myapp:v2"].diff_ids:
    print(f"{diff_id[:19]}…      " + "".join(f"{'✓' if diff_id in r.diff_ids else '·':>10}"
                                            for r in recs.values()))
print()
print("v1's layers are v2's first two, same digests:",
      recs["myapp:v1"].diff_ids == recs["myapp:v2"].diff_ids[:2])
print("busybox's layer is the first of both:",
      recs["busybox"].diff_ids == recs["myapp:v1"].diff_ids[:1])
print("and the same folder on disk:", recs["myapp:v2"].layers[-1] == recs["busybox"].layers[0])
"""),
    ("md", r"""
What is in the new layers? Each is the tar of one container's upper directory:
"""),
    ("code", r"""
for name in ("myapp:v1", "myapp:v2"):
    top = recs[name].manifest["layers"][-1]
    with tarfile.open(blob_path(top["digest"])) as tar:
        files = [m.name + ("/" if m.isdir() else "") for m in tar.getmembers()]
    print(f"{name} adds one layer of {top['size']} bytes:", files)
"""),
    ("md", r"""
And what did the two versions cost? `%pycont system df -v` is `docker system df -v`: per image its
size, the **shared size** (bytes in layers other images also use) and the **unique size** (bytes
only it has — what removing it would free); size = shared + unique. Sizes are the layers'
*uncompressed* bytes, as docker counts them: the same whether the image came as plain tars or gzip.
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont system df -v
"""),
    ("code", r"""
du = {u.reference: u for u in store.disk_usage().images}
for name in recs:
    u = du[name if ":" in name else name + ":latest"]
    print(f"{name:<9} size {kb(u.size):>10}   shared {kb(u.shared_size):>10}   "
          f"unique {kb(u.unique_size):>8}")
print("size = shared + unique, for every image:",
      all(u.size == u.shared_size + u.unique_size for u in du.values()))
v2_top = int(recs["myapp:v2"].manifest["layers"][-1]["size"])
print("v2's unique size is exactly its own layer:", du["myapp:v2"].unique_size == v2_top)
print()
print(f"the store grew by {kb(after_v1 - before)} for v1 and {kb(after_v2 - after_v1)} for v2;")
print(f"a copy of the image would have cost {kb(recs['myapp:v2'].size)}")
print("each version cost less than 2% of a copy:",
      max(after_v1 - before, after_v2 - after_v1) < 0.02 * recs["myapp:v2"].size)
"""),
    ("md", r"""
**What happened.** `commit` turned each container's upper directory into one tar layer and wrote
a config whose `diff_ids` are the parent's plus the new one: v2 **refers to** busybox's and v1's
layers by digest, it does not copy them. A container of v2 stacks three folders — the same
busybox folder as every busybox container. The store grew by the new layer (a tar of a few files,
rounded up to tar's 10 kB records), its unpacked copy, and two small JSON documents; this is the
seed's *reutilização de camadas*, and it is why pulling `node:16` when `node:14` is already there
downloads only the layers that differ.

Notice too that the `myapp` digests above are printed half-masked: unlike busybox's, they change
on every run. A committed layer records the files' modification times, and the config its creation
time, so the same change committed twice gives different digests. (Reproducible builds pin those
times, e.g. with `SOURCE_DATE_EPOCH`.)

---
## 4. Removing images

> *"Remover imagem: `docker image rm node:14`"*

Remove `myapp:v1` while `myapp:v2`, built on it, still exists:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont image rm myapp:v1
"""),
    ("code", r"""
v1_layer = recs["myapp:v1"].layers[0]  # the unpacked layer v1 added (top first)
print("myapp:v1 is listed:", any(i.reference == "myapp:v1" for i in store.images()))
print("its layer is still on disk:", os.path.isdir(v1_layer))
print(pycont.run("myapp:v2", rm=True, name="ch05-run").output)
for h in store.history("myapp:v2"):
    label = {v2_id: "myapp:v2", rec.id: "busybox"}.get(h.id, h.id)
    print(f"  {label:<10} {h.created_by[:60]}")
"""),
    ("md", r"""
**What happened.** `rmi` removed the *name* `myapp:v1` and the documents only v1 had (its config
and manifest: the `Deleted:` lines), but not its layer: `myapp:v2` refers to it. A layer is
deleted when no image refers to it any more. `history` of v2 now shows `<missing>` for the step
that was v1, as docker does for steps it has no image for.

Now let a container use `myapp:v2` — created, not even started — and try to remove the image:
"""),
    ("code", r"""
user = pycont.create("myapp:v2", name="ch05-user")
"""),
    ("code", r"""
%pycont image rm myapp:v2
"""),
    ("code", r"""
user.remove()
print("myapp:v2 is still listed:", any(i.reference == "myapp:v2" for i in store.images()))
"""),
    ("md", r"""
**What happened.** A container's root is the image's layers plus its own upper directory; if the
layers went, the container could never start (or `commit`) again. So `rmi` refuses while any
container — running or not — was made from the image, and names it, as docker does. (The
message is docker's, word for word, *daemon* included, so that scripts written for docker
recognise it; pycont has no daemon.) `rmi -f` would only remove the name.

After all these removals, does the store hold exactly what its images need — no blob that
nothing names, no layer folder left over, no blob whose bytes no longer match its name?
`pycont system check` hashes every blob and follows every reference (index → manifest → config
→ layers); it is `git fsck` for images (docker has no such verb). `--repair` would remove what
nothing references.
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont system check
"""),
    ("code", r"""
from pycont.images import fsck

report = fsck.check(store)
print("problems:", len(report.problems), "| blobs checked:", report.blobs > 0)
"""),
    ("md", r"""
**Why it stays clean.** Every write to the store — `commit`, `load`, `pull`, a build step —
puts its new blobs and unpacked layers in a **staging** folder beside the store first, and
moves them in (rename(2), atomic) only together with the index change that names them; a load
refused halfway, or killed, leaves the store as it was.

---
## 5. Registries: push and pull

> *"As imagens são armazenadas em um registro de imagens (Registry) local ou remoto. Ex: Docker
> Hub, Amazon ECR, Google Container Registry…"* — *"Baixar imagem do Docker Hub: `docker pull
> node:14`"*

A registry is an HTTP server that keeps the same blobs and manifests as the store, by repository
and tag (OCI distribution-spec). Docker Hub is out of reach here:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont pull node:14
"""),
    ("md", r"""
So run a registry here: Debian's `docker-registry` is the CNCF *distribution* registry, the same
program as docker's `registry:2` image. It listens on the **loopback** address only, keeps its
storage in this run's session folder, and is stopped by the clean-up cell. Not on docker's port
5000, nor any fixed port: on a shared machine that may already be another program's — another
learner's registry — and your pushes would go to it. `LocalRegistry` asks for port 0, so the
kernel picks a free port; it reads the port back from the kernel (the socket the registry
process listens on, in `/proc/net/tcp`), and checks, before anything talks to it, that every
socket listening on that port is its registry's.
"""),
    ("code", r"""
if shutil.which("docker-registry") is None:  # Debian's package, installed as root. Where
    # systemd runs, the package also starts its own service on :5000 (systemctl disable --now
    # docker-registry); the one below is ours, on the loopback address only.
    subprocess.run(["apt-get", "install", "-y", "-qq", "docker-registry"], check=False,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), capture_output=True)
registry.start()  # on 127.0.0.1 and a free port; refuses a port another program serves
course.adopt(registry.pid)  # the clean-up stops it, even if this kernel dies first
REGISTRY = registry.host  # 127.0.0.1 and the port the kernel picked
print("GET /v2/ ->", registry.get("/v2/"))
"""),
    ("md", r"""
To push, name the image after the registry (`docker tag`), then `push`. In a magic's line,
`{REGISTRY}` is the variable's value: `127.0.0.1:` and the port.
"""),
    ("code", r"""
%pycont tag myapp:v2 {REGISTRY}/myapp:v2
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont push {REGISTRY}/myapp:v2
"""),
    ("code", r"""
v2 = store.get("myapp:v2")
print("GET /v2/_catalog         ->", registry.get("/v2/_catalog"))
print("GET /v2/myapp/tags/list  ->", registry.get("/v2/myapp/tags/list"))
# Ask for the manifest as docker does: the Accept header names the formats this client reads.
request = urllib.request.Request(
    f"http://{REGISTRY}/v2/myapp/manifests/v2",
    headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
with urllib.request.urlopen(request, timeout=10) as answer:
    pushed_digest = answer.headers["Docker-Content-Digest"]
    remote = json.loads(answer.read())
print("the registry's manifest is a", remote["mediaType"])
print("same config, so the same image id:", remote["config"]["digest"] == v2.id)
print("same manifest as the store's     :", pushed_digest == v2.digest)
"""),
    ("md", r"""
Same image, **different manifest**. The store keeps layers as plain tars (what `commit` wrote);
`push` compressed each one with gzip on the way, as `docker push` does, so the registry's layers
are other bytes, with other digests, in a manifest that lists those. What did not change is
what identifies the image: its config (the image id) and, in it, the `diff_ids` — the digest of
each layer's *uncompressed* tar. Fetch each layer back from the registry, decompress it, hash it:
"""),
    ("code", r"""
for i, (here, diff_id, there) in enumerate(zip(v2.manifest["layers"], v2.diff_ids, remote["layers"])):
    with urllib.request.urlopen(f"http://{REGISTRY}/v2/myapp/blobs/{there['digest']}") as answer:
        blob = answer.read()
    unpacked = "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()
    print(f"layer {i}: {there['mediaType']}, smaller than the store's tar: "
          f"{there['size'] < here['size']}; decompressed, it is the diff_id: {unpacked == diff_id}")
"""),
    ("md", r"""
Docker keeps the registry's manifest digest beside the image as a **RepoDigest**
(`name@sha256:…`): `docker image inspect` lists it, and `docker pull name@sha256:…` names exactly
that manifest.
"""),
    ("code", r"""
info = json.loads(subprocess.run(
    [sys.executable, "-m", "pycont", "image", "inspect", f"{REGISTRY}/myapp:v2"],
    capture_output=True, text=True, check=True).stdout)[0]
print("RepoTags   :", [t.replace(REGISTRY, "{REGISTRY}") for t in info["RepoTags"]])
print("RepoDigests: the registry's digest:", info["RepoDigests"] == [f"{REGISTRY}/myapp@{pushed_digest}"])
"""),
    ("md", r"""
Push the same image to a **second repository** of the same registry, as you would to share a
base between projects. The registry already holds every layer under `myapp`, and the client
knows it (it remembers where it pushed each blob): it asks the registry to **mount** each blob
from `myapp` into the new repository (`POST /v2/team/myapp/blobs/uploads/?mount=…&from=myapp`,
distribution-spec) instead of sending it again. Count the bytes:
"""),
    ("code", r"""
from pycont.images.push import PushStats

%pycont tag myapp:v2 {REGISTRY}/team/myapp:v2
stats = PushStats()
pycont.push(f"{REGISTRY}/team/myapp:v2", stats=stats)
print(f"layers mounted from myapp: {len(stats.mounted)} of {len(v2.manifest['layers'])}")
print(f"bytes sent: {stats.bytes_sent}, the image config only: "
      f"{stats.bytes_sent == v2.manifest['config']['size']}")
"""),
    ("md", r"""
Now remove the image here — all three names — and pull it back from the registry:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont image rm myapp:v2 {REGISTRY}/myapp:v2 {REGISTRY}/team/myapp:v2
"""),
    ("code", r"""
print("myapp images here:", [i.reference for i in store.images() if "myapp" in i.reference])
print("v2's own layer is on disk:", os.path.exists(blob_path(v2.manifest["layers"][-1]["digest"])))
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont pull {REGISTRY}/myapp:v2
"""),
    ("code", r"""
pulled = store.get(f"{REGISTRY}/myapp:v2")
print("same image id       :", pulled.id == v2_id)
print("same layers         :", pulled.diff_ids == v2.diff_ids)
print(pycont.run(f"{REGISTRY}/myapp:v2", rm=True, name="ch05-run").output)
"""),
    ("md", r"""
**What happened.** `push` compressed and sent each layer the registry did not have, then the
config, then the manifest under the tag (`PUT /v2/myapp/manifests/v2`); the registry stores each
blob under its digest, exactly like the local store. `pull` asked for the manifest by tag and
fetched the layers this store lacked — busybox's layer was already here, recognised by its
`diff_id` although the registry's copy is gzip and the store's is not, so it was not downloaded
again (*Already exists*) — checked every digest, and only then named the image. Same config,
same `diff_ids`: an image id means the same image on every machine, however its layers travelled. `docker pull node:14` does the same against Docker
Hub, which serves a **multi-platform index** first (one manifest per CPU architecture).

A registry need not even be a server: `pycont push dir:/some/folder:myapp:v2` writes the image
into a folder as an OCI image layout — the same layout as pycont's store — and `pycont pull
dir:/some/folder:myapp:v2` reads it back, which is how images travel to machines without a network.
"""),
]
EXERCISES = [
    exercise(
        r"""
### Exercise 1 — how many layers?

How many layers does the image pulled from the registry, `f"{REGISTRY}/myapp:v2"`, have, and
how many of them does it share with `busybox`? Answer from the image's documents, not by counting above.
""",
        r"""
answer1_layers = None  # an int
answer1_shared = None  # an int
""",
        r"""
def _layers(ref):
    return store.get(ref).diff_ids


course.check("exercise 1", lambda: answer1_layers == len(_layers(f"{REGISTRY}/myapp:v2"))
             and answer1_shared == len(set(_layers(f"{REGISTRY}/myapp:v2")) & set(_layers("busybox"))),
             "store.get(ref).diff_ids lists an image's layers; a set intersection finds the common ones")
""",
        r"""
mine, base = store.get(f"{REGISTRY}/myapp:v2").diff_ids, store.get("busybox").diff_ids
answer1_layers = len(mine)                   # 3
answer1_shared = len(set(mine) & set(base))  # 1
""",
    ),
    exercise(
        r"""
### Exercise 2 — a third version

Build **`myapp:ex`** from `f"{REGISTRY}/myapp:v2"`: a container of it that writes
`myapp version 3` into `/app/version`, committed as `myapp:ex`. Running `myapp:ex` must print
`myapp version 3`, and it must share **all three** layers of v2.
""",
        r"""
# exercise 2: your code here
""",
        r"""
def _has(ref):
    return any(i.reference == ref for i in store.images())


def _ex2():
    if not _has("myapp:ex"):
        return False
    ex = store.get("myapp:ex")
    out = pycont.run("myapp:ex", rm=True, name="ch05-run").output.strip()
    return out == "myapp version 3" and ex.diff_ids[:3] == _layers(f"{REGISTRY}/myapp:v2")


course.check("exercise 2", _ex2, "run a container of the v2 image with sh -c \"echo 'myapp version 3' > "
             "/app/version\", then commit it: c.commit('myapp:ex'); remove the container")
""",
        r"""
c = pycont.run(f"{REGISTRY}/myapp:v2", ["sh", "-c", "echo 'myapp version 3' > /app/version"],
               name="ch05-ex")
c.commit("myapp:ex", message="version 3")
c.remove()
""",
    ),
    exercise(
        r"""
### Exercise 3 — what would removing free?

How many bytes of **layers** would `rmi myapp:ex` free? Set `answer3` from
`store.disk_usage()`, without removing anything.
""",
        r"""
answer3 = None  # bytes, an int
""",
        r"""
def _only_in_ex():
    # The layers (by diff_id) of myapp:ex that no other image has, and their bytes.
    if not _has("myapp:ex"):
        return None
    ex = store.get("myapp:ex")
    others = {d for i in store.images() if i.id != ex.id for d in store.get(i.id).diff_ids}
    return sum(size for d, size in zip(ex.diff_ids, ex.layer_sizes) if d not in others)


course.check("exercise 3", lambda: answer3 is not None and answer3 == _only_in_ex(),
             "build myapp:ex first (exercise 2); then look for the UNIQUE SIZE of myapp:ex among "
             "store.disk_usage().images")
""",
        r"""
answer3 = {u.reference: u.unique_size for u in store.disk_usage().images}["myapp:ex"]
""",
        note=r"""
Only the layer it alone has: everything below it is shared with `myapp:v2` and `busybox`.
""",
    ),
]
CLEANUP = r"""
registry.stop()  # reap it: this notebook started it
print("the registry runs:", registry.proc.poll() is None)
"""
QUESTIONNAIRE = r"""
1. What are the three kinds of documents an image is made of, and which one's digest is the
   image id?
2. Why is every blob named by the SHA-256 of its content? Give two things that buys.
3. `myapp:v2` was made from `myapp:v1`, made from `busybox`. Which layers does a container of
   v2 stack, and where is each stored?
4. Why did `rmi myapp:v1` free almost nothing while v2 existed?
5. Why does `rmi` refuse to remove an image that only a *stopped* container uses?
6. You pull `node:16` while `node:14` is already here, and they share 5 layers. What is
   downloaded?
7. Committing the same change twice gives two different image ids. Why?

<details><summary>Answers</summary>

1. A manifest (lists the config and the layers by digest), a config (how to run it, its
   history, the layers' `diff_ids`) and the layers (tar archives of file changes). The image id is
   the digest of the config.
2. Any copy can be checked (the bytes must hash to the name), and identical content gets the same
   name, so it is stored and transferred once, whichever images refer to it.
3. Three: busybox's layer, v1's layer, v2's layer (top first in `lowerdir`: v2, v1, busybox), each
   unpacked once under `<root>/images/layers/<diff_id>/`, plus the container's own upper directory.
4. All its layers were also v2's; only its config and manifest (a few hundred bytes) were its own.
   Its `UNIQUE SIZE` was 0.
5. The container's root is made of the image's layers; without them it could not start again or be
   committed.
6. The manifest, the config, and the 5 layers that `node:14` does not have; the 5 common ones
   are already in the store (*Already exists*).
7. The layer records the files' modification times and the config its creation time; different
   bytes give different digests.
</details>
"""
READING = r"""
- OCI image spec: [image manifest](https://github.com/opencontainers/image-spec/blob/main/manifest.md),
  [image config](https://github.com/opencontainers/image-spec/blob/main/config.md) (`rootfs.diff_ids`,
  `history`), [image layout](https://github.com/opencontainers/image-spec/blob/main/image-layout.md),
  [layers](https://github.com/opencontainers/image-spec/blob/main/layer.md).
- OCI [distribution spec](https://github.com/opencontainers/distribution-spec/blob/main/spec.md) —
  the registry's HTTP API: pull, push, tags, catalog.
- [CNCF distribution](https://distribution.github.io/distribution/) — the registry program run
  here ([configuration](https://distribution.github.io/distribution/about/configuration/)).
- Docker: [`docker image ls`](https://docs.docker.com/reference/cli/docker/image/ls/),
  [`docker image rm`](https://docs.docker.com/reference/cli/docker/image/rm/),
  [`docker image history`](https://docs.docker.com/reference/cli/docker/image/history/),
  [`docker system df`](https://docs.docker.com/reference/cli/docker/system/df/),
  [`docker pull`](https://docs.docker.com/reference/cli/docker/image/pull/).
- [Reproducible builds: `SOURCE_DATE_EPOCH`](https://reproducible-builds.org/docs/source-date-epoch/).
"""
# fmt: on
