"""The browser viewer: headless Chromium sees the body where it projects, the timeline moves it,
the server binds to loopback only and frees its port.

Needs Debian's chromium (/usr/bin/chromium; .ci/run installs it) and playwright ([dev] extra).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from josh_jax.body import forward
from josh_jax.synthetic.worlds import SynthConfig, make_world

CHROMIUM = os.environ.get("JOSH_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
VIEW = (800, 600)
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    """Nothing listens on the port and a new server can take it (connections of the old one may
    linger in TIME_WAIT, which SO_REUSEADDR, as servers set it, allows)."""
    if _listening_addresses(port):
        return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def out_dir(open_model, tmp_path_factory):
    """A small output folder: results.npz, init.npz (shifted), a tiny video and summary.json."""
    _, gt = make_world(open_model, 0, SynthConfig(num_keyframes=4, width=160, height=120, focal=150.0, pair_window=2))
    d = tmp_path_factory.mktemp("view_out")
    np.savez(d / "results.npz", **gt)
    init = dict(gt)
    init["transl"] = gt["transl"] + np.float32([0.4, 0, 0])
    init["joints_world"] = gt["joints_world"] + np.float32([0.4, 0, 0])
    np.savez(d / "init.npz", **init)
    W, H = (int(x) for x in gt["image_size"])
    vw = cv2.VideoWriter(str(d / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    for i in range(len(gt["frame_index"])):
        vw.write(np.full((H, W, 3), (200 - 10 * i, 40 + 10 * i, 40), np.uint8))  # BGR: blue to green, no red
    vw.release()
    (d / "summary.json").write_text(json.dumps({"fps": 10.0, "video": str(d / "clip.mp4"), "start": 0}))
    return d, gt


def _project_bbox(cam, pts):
    """Pixel bbox of world points seen by a look-at camera (position, look_at, up, vertical fov) in VIEW."""
    pos, tgt, up = (np.asarray(x, float) for x in (cam.position, cam.look_at, cam.up))
    z = (tgt - pos) / np.linalg.norm(tgt - pos)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pc = (pts - pos) @ np.stack([x, y, z], 1)
    f = VIEW[1] / 2 / np.tan(cam.fov / 2)
    uv = f * pc[:, :2] / pc[:, 2:] + np.array(VIEW) / 2
    return np.floor(uv.min(0)).astype(int), np.ceil(uv.max(0)).astype(int)


def _body_mask(img):
    """Pixels of the joint result's first person (red, JOINT_COLORS[0], shaded)."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (r > 90) & (r > g + 50) & (r > b + 50)


def _shot(page) -> np.ndarray:
    buf = page.screenshot()
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _wait_for(page, cond, timeout=60.0):
    t0 = time.time()
    while True:
        img = _shot(page)
        if cond(img) or time.time() - t0 > timeout:
            return img
        time.sleep(0.5)


@pytest.mark.slow
def test_viewer_in_headless_chromium(out_dir, open_model, tmp_path):
    from playwright.sync_api import sync_playwright

    from josh_jax.view import Viewer

    assert Path(CHROMIUM).exists(), f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)"
    d, gt = out_dir
    port = _free_port()
    v = Viewer(d, port=port)
    try:
        assert v.url == f"http://127.0.0.1:{port}" and v.F == len(gt["frame_index"])
        verts = lambda f: np.asarray(
            forward(
                open_model,
                gt["betas"][0],
                np.concatenate([gt["global_orient"][0, f][None], gt["body_pose"][0, f]]),
                gt["transl"][0, f],
            ).vertices
        )
        lo0, hi0 = _project_bbox(v.server.initial_camera, verts(0))
        last = v.F - 1
        lo1, hi1 = _project_bbox(v.server.initial_camera, verts(last))
        assert (lo0 >= 0).all() and (hi0 < VIEW).all() and (hi0 - lo0 > 20).all()  # the test's own premise

        def body_in(img, lo, hi, frac=0.15):
            m = _body_mask(img)
            inside = m[max(lo[1] - 8, 0) : hi[1] + 8, max(lo[0] - 8, 0) : hi[0] + 8].sum()
            return inside > frac * np.prod(hi - lo)

        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox"],
            )
            try:
                page = browser.new_page(viewport={"width": VIEW[0], "height": VIEW[1]})
                page.goto(v.url)
                page.wait_for_selector("canvas", timeout=60_000)
                img0 = _wait_for(page, lambda im: body_in(im, lo0, hi0))
                cv2.imwrite(str(tmp_path / "frame0.png"), img0[..., ::-1])
                assert body_in(img0, lo0, hi0), "no body pixels where the body projects (frame 0)"
                assert img0.reshape(-1, 3).std(0).max() > 10  # not blank
                # move the timeline from the page: focus the frame slider, press End
                page.get_by_role("slider").first.focus()
                page.keyboard.press("End")
                t0 = time.time()
                while v.frame != last and time.time() - t0 < 30:
                    time.sleep(0.2)
                assert v.frame == last
                lo, hi = np.minimum(lo0, lo1), np.maximum(hi0, hi1)
                crop = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))

                def changed(im):  # share of the bodies' pixels that differ from the first screenshot
                    return (np.abs(im[crop].astype(int) - img0[crop].astype(int)).max(-1) > 30).mean()

                img1 = _wait_for(page, lambda im: body_in(im, lo1, hi1) and changed(im) > 0.05)
                cv2.imwrite(str(tmp_path / "frame_last.png"), img1[..., ::-1])
                assert body_in(img1, lo1, hi1), "no body pixels where the body projects (last frame)"
                assert changed(img1) > 0.05, changed(img1)
                # the init toggle shows the front-ends-only body (grey), hidden by default
                page.get_by_text("Front ends only (init)").click()
                t0 = time.time()
                while not v.groups["init"].visible and time.time() - t0 < 30:
                    time.sleep(0.2)
                assert v.groups["init"].visible
                # the view from above: the browser's camera looks down the world's up (+y is down) and the
                # image changes
                before = _shot(page)
                page.get_by_text("Trajectory from above").click()

                def looks_down():
                    (c,) = v.server.get_clients().values()
                    d = np.asarray(c.camera.look_at) - np.asarray(c.camera.position)
                    return d[1] / np.linalg.norm(d) > 0.99

                t0 = time.time()
                while not looks_down() and time.time() - t0 < 30:
                    time.sleep(0.2)
                assert looks_down()
                top = _wait_for(page, lambda im: (np.abs(im.astype(int) - before).max(-1) > 30).mean() > 0.02)
                assert (np.abs(top.astype(int) - before).max(-1) > 30).mean() > 0.02
            finally:
                browser.close()
    finally:
        v.stop()
    time.sleep(0.5)
    assert _port_free(port)


def _listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) of sockets listening on ``port``."""
    out = []
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(f):
            continue
        for line in Path(f).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.rsplit(":", 1)
            if int(p, 16) == port and state == "0A":
                out.append(addr)
    return out


@pytest.mark.slow
def test_view_cli_loopback_and_errors(out_dir, tmp_path):
    d, _ = out_dir
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), JAX_PLATFORMS="cpu")
    proc = subprocess.Popen(
        [sys.executable, "-m", "josh_jax.view", str(d), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        # SIGINT back to its default (a suite run in the background hands children an ignored SIGINT)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        line = ""
        while "open http" not in line:  # viser prints its own banner first
            line = proc.stdout.readline()
            assert line, "the viewer exited before printing its URL"
        assert f"open http://127.0.0.1:{port} " in line, line
        addrs = _listening_addresses(port)
        assert addrs and all(a in ("0100007F", "00000000000000000000000001000000") for a in addrs), addrs
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    assert _port_free(port)
    for argv in ([str(tmp_path / "missing")], [str(tmp_path)]):
        r = subprocess.run(
            [sys.executable, "-m", "josh_jax.view", *argv],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr


def test_allowed_request_rule():
    from josh_jax.view import allowed_request

    ok = {"Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8080"}
    assert allowed_request(ok, 8080, "127.0.0.1")
    assert allowed_request({"Host": "localhost:8080"}, 8080, "127.0.0.1")  # a navigation sends no Origin
    assert not allowed_request({**ok, "Origin": "http://evil.example"}, 8080, "127.0.0.1")
    assert not allowed_request({**ok, "Origin": "http://127.0.0.1:9999"}, 8080, "127.0.0.1")
    assert not allowed_request({"Host": "evil.example:8080"}, 8080, "127.0.0.1")  # DNS rebinding
    assert not allowed_request({}, 8080, "127.0.0.1")
    assert allowed_request({"Host": "10.1.2.3:8080", "Origin": "http://10.1.2.3:8080"}, 8080, "10.1.2.3")


def test_a_foreign_origin_gets_nothing(out_dir):
    """A WebSocket from a page on another website (its Origin) or through DNS rebinding (its Host) is
    refused with 403 before viser sees it; the viewer's own page connects and receives the scene."""
    import asyncio

    import viser
    import websockets
    from websockets.asyncio.client import connect

    from josh_jax.view import Viewer

    d, _ = out_dir
    v = Viewer(d, port=_free_port())
    proto = [f"viser-v{viser.__version__}"]
    url = f"ws://127.0.0.1:{v.port}"

    async def first_message(**kw):
        async with connect(url, subprotocols=proto, open_timeout=20, **kw) as ws:
            return await asyncio.wait_for(ws.recv(), 20)

    try:
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": f"http://127.0.0.1:{v.port + 1}"},
        ):
            with pytest.raises(websockets.exceptions.InvalidStatus) as err:
                asyncio.run(first_message(origin=headers["Origin"]))
            assert err.value.response.status_code == 403
        # a handshake through DNS rebinding names the attacker's host
        with socket.create_connection(("127.0.0.1", v.port), timeout=20) as sock:
            sock.sendall(
                (
                    f"GET / HTTP/1.1\r\nHost: evil.example:{v.port}\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {proto[0]}\r\n\r\n"
                ).encode()
            )
            assert sock.recv(64).startswith(b"HTTP/1.1 403")
        msg = asyncio.run(first_message(origin=f"http://127.0.0.1:{v.port}"))
        assert len(msg) > 0  # the scene starts to arrive
        import urllib.request

        req = urllib.request.Request(f"http://127.0.0.1:{v.port}/", headers={"Host": f"evil.example:{v.port}"})
        with pytest.raises(urllib.error.HTTPError) as herr:
            urllib.request.urlopen(req, timeout=20)
        assert herr.value.code == 403
        with urllib.request.urlopen(f"http://127.0.0.1:{v.port}/", timeout=20) as r:
            assert r.status == 200
    finally:
        v.stop()


def test_settings_the_server_cannot_use_are_one_line(out_dir, capsys):
    """A port outside 0-65535 (viser retried 1000 ports and then waited for ever), an fps of inf or 1e-9
    (a core spinning, an overflowing timestamp), an address that does not resolve: exit 2, one line, at once."""
    from josh_jax.view import main as view_main

    d, _ = out_dir
    for argv, word in (
        (["--port", "70000"], "--port"),
        (["--port", "-1"], "--port"),
        (["--fps", "inf"], "--fps"),
        (["--fps", "1e-9"], "--fps"),
        (["--host", "no.such.host.invalid"], "--host"),
    ):
        t0 = time.time()
        assert view_main([str(d), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and word in err, err
        assert time.time() - t0 < 30


def _raw_get(port: int, path: str) -> bytes:
    """The whole HTTP response to ``GET path`` sent as is (no client-side normalisation)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_no_route_serves_a_file_outside_its_own(out_dir, tmp_path):
    """Path traversal on the viewer's HTTP routes (plain, %2e%2e, double-encoded, encoded slashes,
    absolute paths) never returns a file outside the viewer's own assets."""
    import viser

    from josh_jax.view import Viewer

    d, _ = out_dir
    secret = tmp_path / "secret.txt"
    marker = "josh-traversal-marker-7d1f"
    secret.write_text(marker)
    build = Path(viser.__file__).parent / "client" / "build"
    rel = os.path.relpath(secret, build)  # ../../.. from viser's served folder to the secret
    enc = rel.replace("..", "%2e%2e")
    variants = [
        f"/{rel}",
        f"/assets/{rel}",
        f"/{enc}",
        "/" + rel.replace("..", "%252e%252e"),
        "/" + rel.replace("/", "%2f"),
        "/" + enc.replace("/", "%2F"),
        "/" + rel.replace("/", "\\"),
        str(secret),
        "/" + str(secret),
        "/%2f" + str(secret).lstrip("/").replace("/", "%2f"),
        "/" + os.path.relpath(d / "results.npz", build),
        "/" + os.path.relpath("/etc/passwd", build),
    ]
    v = Viewer(d, port=_free_port())
    try:
        assert _raw_get(v.port, "/").startswith(b"HTTP/1.1 200")  # its own page is served
        for path in variants:
            resp = _raw_get(v.port, path)
            assert marker.encode() not in resp and b"root:" not in resp, path
            assert not resp.startswith(b"HTTP/1.1 200") or b"PK\x03\x04" not in resp, path  # no results.npz
    finally:
        v.stop()
