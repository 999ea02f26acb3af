"""06 — the Dockerfile and docker build: steps, layers, the build cache, multi-stage, build vs commit."""

# ruff: noqa: E501  (markdown tables and links cannot be wrapped)

from skeleton import exercise

FILE = "06-dockerfile-and-build.ipynb"

# fmt: off
GOAL = r"""
# 06 · Dockerfile and build

> *"Para alterar uma imagem, é necessário criar uma nova imagem. […] Imagem é composta por um
> arquivo chamado Dockerfile."* — to change an image, you must make a new image. […] An image is
> made from a file called Dockerfile.
>
> *"Dockerfile é um arquivo declarativo que contém instruções para criar uma imagem Docker."*
> — a Dockerfile is a declarative file that holds the instructions to create a Docker image.
>
> ```Dockerfile
> FROM node:14
> WORKDIR /app
> COPY . .
> RUN npm install
> CMD ["node", "index.js"]
> EXPOSE 3000
> ```
>
> *"Gerar imagem a partir do Dockerfile: `docker build -t myapp:1.0 .` — Ou gerar imagem v2.0 a
> partir do conteiner em execução: `docker commit myapp myapp:2.0`"* — make an image from the
> Dockerfile, or make image v2.0 from the running container.

## Goal

At the end of this chapter you will have:

- made the seed's example real: a small Node.js web app, its Dockerfile, and
  **`build -t myapp:1.0 .`**, and seen the app answer on port 3000 inside its container;
- read the image **layer by layer** with `history`: which instructions made a layer, which only
  changed the config (`image inspect`: `Env`, `Cmd`, `WorkingDir`, `ExposedPorts`);
- watched the **build cache** at work: what a one-line change in `index.js` rebuilds, and why;
  then **reordered** the Dockerfile so that `npm install` stays cached, and kept files out of the
  build with **`.dockerignore`**;
- built a **multi-stage** image: the toolchain in one stage, a 2 MB image to ship in the other;
- made **v2 both ways** — `build` from an edited recipe, and `commit` of a changed container —
  and compared what each image can tell about itself; then rebuilt with `--no-cache`, and seen a
  failing `RUN` leave one clear error line and no image.
"""
ALLOWS = r"""
Every `RUN` step runs in a container, so building needs namespaces (root, or rootless with user
namespaces). **This machine has no network**: Docker Hub cannot be reached, so the base image,
`node:20`, is made here from the host's Debian package (section 1), and `npm install` runs
`--offline` (the app has no dependencies). The next cell gives this run its own pycont root — its
own images, containers and **build cache** — and a folder for the app's sources.
"""
NEEDS = ("namespaces",)
SETUP = r"""
import hashlib
import os
import shutil

import pycont
from pycont.builder.progress import Quiet  # a build that prints nothing while it runs
from pycont.course import Chapter, wait_for
from pycont.images import Store


def show_steps(result):
    # One line per step of a build: from the cache, or run again.
    for s in result.steps:
        how = "(base)" if s.text.startswith("FROM") else "CACHED" if s.cached else "built"
        print(f"{s.label:<13} {how:<7} {s.text[:58]}")
    print(f"→ {result.cache_hits} of {len(result.steps)} steps from the cache")


def edit(path, old, new):
    # Change one line of a source file, as you would in your editor.
    with open(path) as f:
        text = f.read()
    assert old in text, f"{old!r} is not in {path}"
    with open(path, "w") as f:
        f.write(text.replace(old, new))
    print("edited", os.path.basename(path) + ":", repr(old), "→", repr(new))


def start_app(image, name):
    # Run the image's default command in the background; wait until it listens.
    c = pycont.run(image, name=name, detach=True)
    wait_for(lambda: "listening" in "".join(c.logs()) or c.status != "running")
    return c


def ask(c):
    # GET / on port 3000 from inside the container (host and container cannot talk yet).
    return c.exec(["wget", "-qO-", "127.0.0.1:3000"]).output.strip()


def images_named(prefix):
    return sorted(i.reference for i in store.images() if i.reference.startswith(prefix))
"""
START = r"""
store = Store()  # this run's own store, in its session folder
APP = course.scratch("ch06-app")  # the build context: myapp's sources
os.makedirs(APP)
print("the app's folder:", APP)
"""
SECTIONS = [
    ("md", r"""
## 1. An image to build from, and the app

The seed builds `FROM node:14`, from Docker Hub. Docker Hub is not reachable here, so make the
base image offline: `image import-debian nodejs` packs the host's Debian `nodejs` package (node
and npm, with the libraries they need) on top of busybox, as the image **`node:20`**, with a `node`
user (1000:1000) as the official image has. It prints which package version it took and how long
it took, so your output will differ:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont image import-debian nodejs
"""),
    ("code", r"""
r = pycont.run("node:20", ["node", "-e", "console.log('node runs, major version', "
                                         "process.versions.node.split('.')[0])"], rm=True,
               name="ch06-node")
print(r.output.strip())
print("npm is there too:", pycont.run("node:20", ["sh", "-c", "command -v npm"], rm=True,
                                      name="ch06-node").output.strip())
"""),
    ("md", r"""
Now the application, in the folder `APP`: a `package.json` with no dependencies (and the three
scripts `npm init` would give a project: `start`, a `build` used in section 6, and the famous
`test` that fails), a tiny HTTP server on port 3000 that answers with a greeting and the version
it reads from a file, and that file. `%%writefile` writes a cell into a file (IPython replaces
`{APP}` with the variable's value):
"""),
    ("code", r"""
%%writefile {APP}/package.json
{
  "name": "myapp",
  "version": "1.0.0",
  "private": true,
  "scripts": {
    "start": "node index.js",
    "build": "node build.js",
    "test": "echo \"Error: no test specified\" && exit 1"
  }
}
"""),
    ("code", r"""
%%writefile {APP}/index.js
const http = require("http");
const fs = require("fs");

const version = fs.readFileSync(__dirname + "/version.txt", "utf8").trim();
http.createServer((req, res) => {
  res.end(`Hello from myapp ${version}\n`);
}).listen(3000, () => console.log(`myapp ${version} listening on port 3000`));
"""),
    ("code", r"""
%%writefile {APP}/build.js
// npm run build: a static page made from the sources, for a plain web server (section 6)
const fs = require("fs");
const version = fs.readFileSync("version.txt", "utf8").trim();
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/index.html", `Hello from myapp ${version} (static)\n`);
console.log("wrote dist/index.html");
"""),
    ("code", r"""
with open(f"{APP}/version.txt", "w") as f:
    f.write("1.0\n")
"""),
    ("md", r"""
And the seed's Dockerfile, word for word but for the base image, and for `npm install`'s flags:
`--offline` (no registry to ask), `--no-audit --no-fund` (no messages that need the network).
"""),
    ("code", r"""
%%writefile {APP}/Dockerfile
FROM node:20
WORKDIR /app
COPY . .
RUN npm install --no-audit --no-fund --offline
CMD ["node", "index.js"]
EXPOSE 3000
"""),
    ("md", r"""
---
## 2. `build -t myapp:1.0 .`

`%pycont build` is `docker build`: the last argument is the **build context**, the folder whose
files `COPY` can take (the seed's `.`); the Dockerfile is `Dockerfile` in it unless `-f` names
another. The log is BuildKit's `--progress plain` format: `#N [i/n] INSTRUCTION` when a step
starts, the step's output with the seconds since it began, then `#N DONE` and its time.
"""),
    ("code", r"""
%pycont build -t myapp:1.0 {APP}
"""),
    ("md", r"""
**What happened.** Each instruction is one step, run in order on the result of the one before:

| step | what pycont did |
|---|---|
| `FROM node:20` | start from that image: its layers and its config |
| `WORKDIR /app` | set the working directory in the config, and create `/app`: a small layer |
| `COPY . .` | write the context's files into `/app` as a new layer — no container needed |
| `RUN npm install …` | start a container of the image so far, run the command in it with `/bin/sh -c`, and turn its read/write layer (chapter 04) into a new layer: here, the `package-lock.json` npm wrote |
| `CMD`, `EXPOSE` | only change the config: no files, no layer |

Then it wrote the image's config and manifest (chapter 05), and only then **named** it
`myapp:1.0`.

---
## 3. Run it

The default command is the Dockerfile's `CMD`, run in the `WORKDIR`. Start it in the background
and ask it for its page. The container has its own network namespace (chapter 02), with only a
loopback interface: the host cannot reach port 3000 yet (publishing a port, `-p 3000:3000`, is
chapter 08), so ask from **inside**, with busybox's `wget`:
"""),
    ("code", r"""
app = start_app("myapp:1.0", "ch06-app")
print("its log:", "".join(app.logs()).strip())
print("GET http://127.0.0.1:3000/ →", ask(app))
print("its processes (pid inside, command):", [(p["nspid"], p["cmd"]) for p in app.processes()])
"""),
    ("code", r"""
app.stop(timeout=1)
app.remove()
"""),
    ("md", r"""
---
## 4. The image, layer by layer

`%pycont history` (`docker history`) lists one row per instruction, newest first, with the
instruction as it ran (`CREATED BY`) and the size of the layer it made: **`0B` for the steps
that only changed the config**. Its `CREATED` column changes with the clock:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont history myapp:1.0
"""),
    ("code", r"""
for row in store.history("myapp:1.0"):
    what = "config only" if row.empty_layer else "a layer    "
    print(f"{what}  {row.created_by[:62]}")
img, base = store.get("myapp:1.0"), store.get("node:20")
print()
print("layers: node:20's", len(base.diff_ids), "+", len(img.diff_ids) - len(base.diff_ids),
      "new, the same digests below:", img.diff_ids[:len(base.diff_ids)] == base.diff_ids)
"""),
    ("md", r"""
Those rows are not invented by `history`: they are the **`history` field of the image's
config** (OCI image-spec, `config.md`), one entry per step, where a step that made no layer says
`"empty_layer": true`. The newest five:
"""),
    ("code", r"""
for entry in img.config["history"][-5:]:
    print({k: v for k, v in entry.items() if k != "created"})
"""),
    ("md", r"""
And the config itself, as `image inspect` shows it (`docker image inspect`): the fields that
`WORKDIR`, `CMD` and `EXPOSE` set, next to `Env`, inherited from `node:20` through `FROM`:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont image inspect --format '{{json .Config}}' myapp:1.0
"""),
    ("code", r"""
conf = img.config["config"]
print("WorkingDir   ", conf["WorkingDir"], "                ← WORKDIR /app")
print("Cmd          ", conf["Cmd"], "  ← CMD [\"node\", \"index.js\"]")
print("ExposedPorts ", conf["ExposedPorts"], "      ← EXPOSE 3000")
print("Env          ", [e.split("=")[0] for e in conf["Env"]], "← from node:20 (FROM)")
print("Env is node:20's:", conf["Env"] == base.config["config"]["Env"])
"""),
    ("md", r"""
**What happened.** `myapp:1.0` is `node:20`'s layers, **shared** (the same digests: stored
once, chapter 05), plus three small layers of its own — `WORKDIR`, `COPY`, `RUN` — and a config
that says how to run it. `EXPOSE 3000` opens nothing: it is a note in the config, for people and
for `run -P`; only publishing a port (`-p`) makes it reachable.

---
## 5. The build cache: what a one-line change rebuilds

Change one line of `index.js` — the greeting — and build again, from Python this time:
`pycont.build(CONTEXT, TAG)` is the same build (`progress=Quiet()` prints nothing while it runs;
`show_steps` prints what each step did).
"""),
    ("code", r"""
edit(f"{APP}/index.js", "Hello from myapp", "Hi from myapp")
r = pycont.build(APP, "myapp:1.1", progress=Quiet())
show_steps(r)
"""),
    ("md", r"""
**Why.** Before it runs a step, the builder computes the step's **cache key**: a hash that
chains three things —

1. the key of the step before it (so of the parent image and every step so far),
2. the instruction, after variables are replaced,
3. for `COPY` and `ADD`, a hash of the **content** (and metadata) of the files it copies.

If a step with that key was built before, its result is reused (*CACHED*) without running
anything. `WORKDIR /app` on `node:20` had the same key as in section 2: cached. `COPY . .` hashes
the files of the context, and `index.js` changed: a new key, so it ran again. From there on
**every** key is new, because each key includes its parent's — `npm install` ran again although
`package.json` did not change, and even `CMD` and `EXPOSE` were redone. (`RUN` is never compared
by what it did: `RUN apt-get update` stays cached for months. Only its text and its parent count.)

---
## 6. Order the steps for the cache

The fix is to copy first what `npm install` needs — only `package.json` — install, and copy the
rest of the sources afterwards. Write the reordered Dockerfile and build it once:
"""),
    ("code", r"""
%%writefile {APP}/Dockerfile
FROM node:20
WORKDIR /app
COPY package.json .
RUN npm install --no-audit --no-fund --offline
COPY . .
CMD ["node", "index.js"]
EXPOSE 3000
"""),
    ("code", r"""
%pycont build -t myapp:1.2 {APP}
"""),
    ("md", r"""
Now edit `index.js` again — a code change, as you make many a day — and rebuild:
"""),
    ("code", r"""
edit(f"{APP}/index.js", "listening on port", "is listening on port")
"""),
    ("code", r"""
%pycont build -t myapp:1.3 {APP}
"""),
    ("code", r"""
app = start_app("myapp:1.3", "ch06-app")
print("GET / →", ask(app), "| log:", "".join(app.logs()).strip())
app.stop(timeout=1)
app.remove()
"""),
    ("md", r"""
**What happened.** `COPY package.json .` hashes only `package.json`, which did not change: the
same key, and so `RUN npm install` on top of it has the same key too — **CACHED**. Only
`COPY . .` and the config steps after it ran. With real dependencies, that is the difference
between a rebuild of a second and one of minutes. The rule: **the steps that change least go
first**; the sources you edit all day go last.

---
## 7. `.dockerignore`: what the context leaves out

`COPY . .` copied the whole folder — the `Dockerfile` too. On a developer's machine the folder
also holds `node_modules` (from a local `npm install`), logs, build output: copying them makes the
image bigger, can overwrite what the image's own `npm install` made, and **breaks the cache**
whenever one of them changes. `.dockerignore`, at the top of the context, lists what to leave
out, one pattern a line, much like `.gitignore` (Go's `filepath.Match`, plus `**` for any depth
and `!` for exceptions):
"""),
    ("code", r"""
%%writefile {APP}/.dockerignore
# made on the host, never copied into the image
node_modules
dist
*.log
# only for the build itself: the builder still reads them, COPY leaves them out
Dockerfile*
.dockerignore
"""),
    ("code", r"""
r = pycont.build(APP, "myapp:1.4", progress=Quiet())
show_steps(r)
print()
print("in /app:", pycont.run("myapp:1.4", ["ls", "-A", "/app"], rm=True,
                             name="ch06-ls").output.split())
"""),
    ("md", r"""
`COPY . .` ran once more (the `Dockerfile` left the copied files), and `npm install` stayed
cached. Now do what a working day does to the folder: a local `npm install` makes `node_modules`,
and something writes a log. Build again:
"""),
    ("code", r"""
os.makedirs(f"{APP}/node_modules/left-pad")
with open(f"{APP}/node_modules/left-pad/index.js", "w") as f:
    f.write("module.exports = (s, n) => s.padStart(n);\n")
with open(f"{APP}/npm-debug.log", "w") as f:
    f.write("0 verbose cli a local run\n")
r2 = pycont.build(APP, "myapp:1.4", progress=Quiet())
show_steps(r2)
print("the same image as before:", r2.id == r.id)
"""),
    ("md", r"""
**What happened.** The builder applies `.dockerignore` before it hashes or copies anything: the
ignored files are not part of the context at all, so a change to them changes no key. Every step
was cached and the build gave back the very same image (same id).

---
## 8. Multi-stage: build with the toolchain, ship without it

`myapp` needs node at run time, but many apps need their toolchain only to **build**: a compiler,
a bundler, `npm run build`. A **multi-stage** Dockerfile has several `FROM`s: each starts a
stage, a stage can be named (`AS build`), and `COPY --from=build` takes files from a finished
stage. Only the **last** stage becomes the image. Here the first stage runs `npm run build`
(`build.js` writes `dist/index.html`); the second serves that page with busybox's `httpd`.

This time the Dockerfile is the cell itself: **`%%dockerfile`** builds the cell, with `--context`
naming the folder `COPY` reads from. The log streams into the cell, and the result is shown as a
table of steps:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%%dockerfile -t myapp:static --context {APP}
# stage "build": node, npm and the sources
FROM node:20 AS build
WORKDIR /app
COPY package.json .
RUN npm install --no-audit --no-fund --offline
COPY . .
RUN npm run build

# the image: busybox and the page, nothing else
FROM busybox
COPY --from=build /app/dist /www
EXPOSE 3000
CMD ["httpd", "-f", "-p", "3000", "-h", "/www"]
"""),
    ("md", r"""
In a code cell, `_` is the value of the cell before: the `BuildResult` the magic returned (its
table above also has each step's time and layer size, which change from run to run).
"""),
    ("code", r"""
static = _
show_steps(static)
"""),
    ("code", r"""
web = start_app("myapp:static", "ch06-web")
print("GET / →", ask(web))
web.stop(timeout=1)
web.remove()
print("node in myapp:static:", pycont.run("myapp:static", ["sh", "-c", "command -v node || echo none"],
                                          rm=True, name="ch06-ls").output.strip())
"""),
    ("md", r"""
Compare the sizes: `%pycont images`, and `%pycont system df -v` for what each image shares:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont images
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont system df -v
"""),
    ("code", r"""
sizes = {ref: store.get(ref).size for ref in ("node:20", "myapp:1.4", "myapp:static", "busybox")}
for ref, size in sizes.items():
    print(f"{ref:<13} {size / 1e6:6.1f} MB")
print()
print("myapp:static is under 3 MB:", sizes["myapp:static"] < 3e6)
print("its layers: busybox's + the page:", len(store.get("myapp:static").diff_ids) == 2)
"""),
    ("md", r"""
**What happened.** Every step of the build stage before `npm run build` was **CACHED**: they are
the same steps, on the same parent, with the same files, as `myapp:1.4`'s — stages share one
cache. The stage ran `npm run build`
in a container, as any `RUN`. Then the second stage started again from `busybox`, and
`COPY --from=build` copied one folder out of the build stage's result. The node runtime, npm and
the sources stayed behind: the image is busybox plus one small layer, under 3 MB against 170 MB
— less to store, to pull, and to attack. (`--target build` would build only the first stage, to
debug it.)

---
## 9. `build` or `commit`: two ways to make v2

The seed gives two ways to make a new version. Make **v2.0** both ways, from the same v1, with
the same change: the version file says `2.0`.

**With `commit`** — run a container of `myapp:1.4` (named `ch06-myapp`; the seed's container is
`myapp`), change the file inside, commit the container:
"""),
    ("code", r"""
app = start_app("myapp:1.4", "ch06-myapp")
r = app.exec(["sh", "-c", "echo 2.0 > /app/version.txt"])
print("changed inside the container, exit code", r.exit_code)
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont commit ch06-myapp myapp:2.0-commit
"""),
    ("md", r"""
**With `build`** — change the source on the host, and the recipe: a label that says the version
(the OCI's standard `org.opencontainers.image.version`). Then build:
"""),
    ("code", r"""
with open(f"{APP}/version.txt", "w") as f:
    f.write("2.0\n")
"""),
    ("code", r"""
%%writefile {APP}/Dockerfile
FROM node:20
LABEL org.opencontainers.image.version="2.0"
WORKDIR /app
COPY package.json .
RUN npm install --no-audit --no-fund --offline
COPY . .
CMD ["node", "index.js"]
EXPOSE 3000
"""),
    ("code", r"""
%pycont build -t myapp:2.0-build {APP}
"""),
    ("md", r"""
Both images answer 2.0 (while the committed container still answers 1.0: `node` read the file
when it started — `commit` copies files, not a running process):
"""),
    ("code", r"""
print(f"{'ch06-myapp (running)':<22} →", ask(app))
for ref in ("myapp:2.0-commit", "myapp:2.0-build"):
    c = start_app(ref, "ch06-v2")
    print(f"{ref:<22} →", ask(c))
    c.stop(timeout=1)
    c.remove()
app.stop(timeout=1)
app.remove()
"""),
    ("md", r"""
Now ask each image **how it was made**: the rows of its history that `myapp:1.4` does not have.
"""),
    ("code", r"""
def rows_above(ref, below):
    # The rows of ref's history that the image `below` does not have (newest first).
    return [h.created_by for h in store.history(ref)][:-len(store.history(below))]


print("myapp:2.0-commit = myapp:1.4, and above it:")
for row in rows_above("myapp:2.0-commit", "myapp:1.4"):
    print("   ", row)
print("myapp:2.0-build = node:20, and above it:")
for row in rows_above("myapp:2.0-build", "node:20"):
    print("   ", row)
"""),
    ("md", r"""
**What happened.** The committed image is `myapp:1.4` plus one layer whose history row says
**`node index.js`** — the command the container was running, not what changed it. Nothing in
the image records the `echo 2.0 > /app/version.txt`; to know what differs you must diff layers,
and to make it again you must remember what you typed. The built image's history *is* its
recipe: every instruction, in order (and `node:20`'s own rows under them). The Dockerfile lives
with the sources, in version control, reviewed like code; anyone can rebuild it, on a new base
image when that one gets security fixes. That is why images you ship are built, and `commit` is
for exploring, or for saving a container's state to look at later.

---
## 10. `--no-cache`: the recipe from scratch

A build that uses the cache trusts that a `RUN` gives the same result each time. `--no-cache`
runs every step again (say, to pick up new package versions behind an unchanged
`RUN apt-get install`); `pycont builder prune -f` empties the cache for good. Rebuild v2.0 from
scratch:
"""),
    ("code", r"""
before = store.get("myapp:2.0-build")
%pycont build --no-cache -t myapp:2.0-build {APP}
"""),
    ("code", r"""
def files_of(ref):
    # The md5 of each file in /app: what the app is made of, not when it was written.
    return pycont.run(ref, ["sh", "-c", "md5sum /app/*"], rm=True, name="ch06-ls").output


after = store.get("myapp:2.0-build")
print("the same image id:", after.id == before.id)
print("the same files in /app:", files_of(after.id) == files_of(before.id))
print("the same config:", after.config["config"] == before.config["config"])
"""),
    ("md", r"""
**What happened.** Every step ran again, and the recipe made the same files and the same config.
The image id still differs: layers record the files' modification times and the config its
creation time (chapter 05); builders that want byte-for-byte reproducible images pin those
(`SOURCE_DATE_EPOCH`). The old image lost its name and lives on as `<none>` until pruned.

---
## 11. When a step fails

`npm test` runs the `test` script of `package.json` — the one `npm init` writes, which fails.
Build an image that runs the tests:
"""),
    ("code", r"""
%%dockerfile -t ch06-tested --context {APP}
FROM myapp:2.0-build
RUN npm test
"""),
    ("code", r"""
print("an image named ch06-tested:", images_named("ch06-tested") != [])
print("no container left behind:", course.containers() == [])
"""),
    ("md", r"""
**What happened.** The step's output streamed as it ran, then one line said which instruction
failed, where (`Dockerfile:2`, here the cell's line 2) and how (exit code 1, npm's). Nothing was
named: a build tags its image only when **every** step succeeded, so a failed build never
replaces `myapp:…` with half an image. The step's container was removed. The steps before it
stay in the cache: fix the test, and the rebuild starts at the failed step.
"""),
]
EXERCISES_INTRO = r"""
Each check builds from a copy of `APP`, or looks at the image you build; nothing it makes is
named like yours.
"""
EXERCISES = [
    exercise(
        r"""
### Exercise 1 — keep the install cached

This Dockerfile works, but every change to `index.js` runs `npm install` again. Set
`dockerfile1` to a Dockerfile that builds the same app (same `CMD`, and still
`NODE_ENV=production`) where a rebuild after an edit of `index.js` takes `npm install` **from the
cache**. The check builds it in a copy of `APP`, edits `index.js`, and builds again.

```Dockerfile
FROM node:20
WORKDIR /app
COPY . .
RUN npm install --no-audit --no-fund --offline
ENV NODE_ENV=production
CMD ["node", "index.js"]
```
""",
        r'''
dockerfile1 = """
FROM node:20
"""
''',
        r"""
def _ex1():
    if not isinstance(dockerfile1, str):
        return False
    ctx = course.scratch("ch06-ex1")
    shutil.rmtree(ctx, ignore_errors=True)
    shutil.copytree(APP, ctx)
    pycont.build(ctx, "ch06-ex1:before", text=dockerfile1, progress=Quiet())
    with open(f"{ctx}/index.js", "a") as f:
        f.write("// an edit\n")
    after = pycont.build(ctx, "ch06-ex1:after", text=dockerfile1, progress=Quiet())
    installs = [s for s in after.steps if s.text.startswith("RUN npm install")]
    conf = store.get("ch06-ex1:after").config["config"]
    copied = pycont.run("ch06-ex1:after", ["tail", "-n1", "/app/index.js"], rm=True,
                        name="ch06-check").output.strip()
    return (len(installs) == 1 and installs[0].cached and conf.get("Cmd") == ["node", "index.js"]
            and "NODE_ENV=production" in conf.get("Env", []) and copied == "// an edit")


course.check("exercise 1", _ex1,
             "copy only package.json, run npm install, then COPY . . (section 6); keep the ENV and the CMD")
""",
        r'''
dockerfile1 = """
FROM node:20
WORKDIR /app
COPY package.json .
RUN npm install --no-audit --no-fund --offline
COPY . .
ENV NODE_ENV=production
CMD ["node", "index.js"]
"""
''',
        note=r"""
`ENV` may go anywhere after `FROM` here; placed before `COPY package.json .` it is cached too, as
it changes only the config.
""",
    ),
    exercise(
        r"""
### Exercise 2 — v3, configuration only

Build **`myapp:3.0`** on top of `myapp:2.0-build` that adds only configuration: the environment
variable `APP_VERSION=3.0` and the label `org.opencontainers.image.version` set to `3.0`. It
must have **exactly the layers** of `myapp:2.0-build`: not one more. Use a `%%dockerfile` cell
(no `--context` needed: nothing is copied).
""",
        r"""
# exercise 2: your %%dockerfile cell here
""",
        r"""
def _ex2():
    if "myapp:3.0" not in images_named("myapp:"):
        return False
    v3, v2 = store.get("myapp:3.0"), store.get("myapp:2.0-build")
    conf = v3.config["config"]
    return ("APP_VERSION=3.0" in conf.get("Env", [])
            and conf.get("Labels", {}).get("org.opencontainers.image.version") == "3.0"
            and v3.diff_ids == v2.diff_ids)


course.check("exercise 2", _ex2,
             "FROM myapp:2.0-build, then an ENV and a LABEL line: both only change the config; "
             "check with %pycont image inspect myapp:3.0")
""",
        r"""
%%dockerfile -t myapp:3.0
FROM myapp:2.0-build
ENV APP_VERSION=3.0
LABEL org.opencontainers.image.version="3.0"
""",
    ),
    exercise(
        r"""
### Exercise 3 — a tiny image

Build **`myapp:tiny`**, under **3 MB**, whose default command **prints** the page that
`npm run build` makes (`dist/index.html`, which begins `Hello from myapp`). node cannot be in
it: use two stages.
""",
        r"""
# exercise 3: your code here
""",
        r"""
def _ex3():
    if "myapp:tiny" not in images_named("myapp:"):
        return False
    out = pycont.run("myapp:tiny", rm=True, name="ch06-check").output.strip()
    return store.get("myapp:tiny").size < 3e6 and out.startswith("Hello from myapp")


course.check("exercise 3", _ex3,
             "a build stage as in section 8, then FROM busybox, COPY --from=build the file, and "
             'CMD ["cat", "/the/file"]')
""",
        r"""
%%dockerfile -t myapp:tiny --context {APP}
FROM node:20 AS build
WORKDIR /app
COPY . .
RUN npm run build

FROM busybox
COPY --from=build /app/dist/index.html /index.html
CMD ["cat", "/index.html"]
""",
    ),
]
QUESTIONNAIRE = r"""
1. Which instructions of the seed's Dockerfile make a layer, and which only change the config?
   Where does `history` show the difference?
2. What goes into a step's cache key? Why does a change to `index.js` make `CMD` run again in
   the seed's Dockerfile?
3. Why does copying `package.json` alone before `RUN npm install` save time, and when does
   `npm install` run again all the same?
4. A `RUN apt-get update && apt-get install -y curl` step stays cached for months. Why, and how
   do you get fresh packages?
5. What does `.dockerignore` change, and why does a new log file in the folder then keep every
   step cached?
6. In a multi-stage build, which stage becomes the image? What does `COPY --from=build` do?
7. You made v2 with `commit` and a colleague made it with `build`. Which of the two images can
   say how it was made, and which can be made again tomorrow?
8. A `RUN` fails at step 5 of 8. What is left: an image, a tag, a container, cache entries?

<details><summary>Answers</summary>

1. `WORKDIR` (when it creates the folder), `COPY` and `RUN` make layers; `CMD` and `EXPOSE`
   only change the config. `history` shows `0B` for those (their entries in the config's
   `history` say `empty_layer: true`).
2. The key of the step before it, the instruction's text after substitution, and for `COPY`/`ADD`
   a hash of the copied files' content and metadata. `index.js` changes `COPY . .`'s key, and every
   later key includes it, so `RUN`, `CMD` and `EXPOSE` miss too.
3. The key of `COPY package.json .` depends only on `package.json`: edits to other files keep it,
   and so `npm install`'s key too. It runs again when `package.json` (the dependencies) changes,
   when a step before it changes, or with `--no-cache`.
4. A `RUN`'s key is its text and its parent, not what it downloaded: same text, same parent, cache
   hit. `--no-cache` (or a change in the step's text or before it) runs it again.
5. It removes files from the build context: `COPY` does not see them, and they are not part of the
   hash of `COPY . .`'s sources. An ignored file can change freely without changing any key.
6. The last stage (or the one `--target` names). `COPY --from=build SRC DEST` copies files from
   the finished stage `build`'s filesystem instead of from the context.
7. The built one: its history lists every instruction, and its Dockerfile with the sources makes
   it again. The committed one's history says only the container's command (`node index.js`);
   what was changed, and how, is recorded nowhere.
8. No image and no tag; the step's container is removed. The steps 1–4 that succeeded are in the
   cache, so the next build starts at step 5.
</details>
"""
READING = r"""
- Docker: [Dockerfile reference](https://docs.docker.com/reference/dockerfile/) (`FROM`, `RUN`,
  `COPY --from`, `WORKDIR`, `CMD`, `EXPOSE`, `LABEL`),
  [`docker build`](https://docs.docker.com/reference/cli/docker/buildx/build/),
  [`.dockerignore` files](https://docs.docker.com/build/concepts/context/#dockerignore-files) and
  [the build context](https://docs.docker.com/build/concepts/context/).
- Docker: [Build cache](https://docs.docker.com/build/cache/) and
  [how the cache is invalidated](https://docs.docker.com/build/cache/invalidation/);
  [Optimize cache usage](https://docs.docker.com/build/cache/optimize/) (order your layers).
- Docker: [Multi-stage builds](https://docs.docker.com/build/building/multi-stage/).
- [`docker image history`](https://docs.docker.com/reference/cli/docker/image/history/),
  [`docker image inspect`](https://docs.docker.com/reference/cli/docker/image/inspect/),
  [`docker commit`](https://docs.docker.com/reference/cli/docker/container/commit/).
- OCI image spec, [image config](https://github.com/opencontainers/image-spec/blob/main/config.md)
  — the `history` field (`created_by`, `empty_layer`) and `config` (`Env`, `Cmd`, `WorkingDir`,
  `ExposedPorts`, `Labels`); [pre-defined annotations](https://github.com/opencontainers/image-spec/blob/main/annotations.md)
  (`org.opencontainers.image.version`).
- [BuildKit](https://github.com/moby/buildkit) — the builder behind `docker build`, and its
  `--progress plain` log.
- [Reproducible builds: `SOURCE_DATE_EPOCH`](https://reproducible-builds.org/docs/source-date-epoch/).
"""
# fmt: on
