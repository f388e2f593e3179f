"""``python -m josh_jax.view DIR``: look at a demo/solve output folder in the browser (viser).

Shows the scene points, the camera path with a frustum every few frames and
the current camera with the current video frame (when the video named in
summary.json is readable), and every person's body mesh animated over a
timeline: play/pause, a frame slider, a speed, the joint result and the
front-ends-only one (``init.npz``) toggled separately, each person's path on
the ground, and a button that looks at the trajectories from above. The first
view is the video camera at the first frame.

The server binds to 127.0.0.1 (this machine only) unless ``--host`` says
otherwise, and prints the URL to open; Ctrl-C stops it. It answers only its
own page: a request whose ``Host`` is not the viewer's address or whose
``Origin`` is another website (a page open in the same browser) gets 403 and
no WebSocket (:func:`allowed_request`). Needs the ``[viz]``
extra (``pip install -e '.[viz]'``).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

from josh_jax.errors import JoshError
from josh_jax.export.motion import Motion, body_model_for, load_motion, video_fps

JOINT_COLORS = [(230, 60, 50), (50, 110, 230), (60, 180, 60), (220, 170, 40)]
INIT_COLOR = (170, 170, 170)


def _wxyz(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return np.array([w, x, y, z])


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_SERVE_LOCK = threading.Lock()


def allowed_request(headers, port: int, host: str) -> bool:
    """Is an HTTP or WebSocket request for this viewer (on ``port``, bound to ``host``) one its own page
    made? Its ``Host`` must name the viewer (a loopback name, or the bound address, with the port: a page
    on another site reached through DNS rebinding names its own host), and its ``Origin``, which browsers
    send with every WebSocket handshake, must be the viewer's own page: any other website's script is
    refused (the scene and the video frames go over that WebSocket)."""
    names = set(LOOPBACK_NAMES) | ({host, f"[{host}]"} if host not in ("", "0.0.0.0", "::") else set())
    own = {f"{n}:{port}" for n in names}

    def one(name):  # the header's only value; "" when absent, None when repeated
        values = headers.get_all(name) if hasattr(headers, "get_all") else [v for v in [headers.get(name)] if v]
        return None if len(values) > 1 else (values[0].strip().lower() if values else "")

    h, origin = one("Host"), one("Origin")
    if h not in own or origin is None:
        return False
    return origin == "" or origin in {f"http://{o}" for o in own}


def _guarded_serve(serve, host: str):
    """``websockets.asyncio.server.serve`` whose ``process_request`` first refuses, with 403, every
    request :func:`allowed_request` does not allow (viser 1.1 has no hook for it)."""
    import http

    def wrapped(handler, *args, process_request=None, **kw):
        def check(connection, request):
            port = int(connection.local_address[1])
            if not allowed_request(request.headers, port, host):
                return connection.respond(http.HTTPStatus.FORBIDDEN, "this viewer serves its own page only\n")
            return process_request(connection, request) if process_request is not None else None

        return serve(handler, *args, process_request=check, **kw)

    return wrapped


def _start_server(host: str, port: int, verbose: bool):
    """A viser server that answers its own page only (:func:`allowed_request`)."""
    import viser
    import websockets.asyncio.server as ws_server

    with _SERVE_LOCK:  # viser calls ws_server.serve while its constructor waits for the bound port
        serve = ws_server.serve
        ws_server.serve = _guarded_serve(serve, host.lower())
        try:
            return viser.ViserServer(host=host, port=port, verbose=verbose)
        finally:
            ws_server.serve = serve


class _Bodies:
    """Posed vertices of one result's people per frame (jit-compiled forward, cached)."""

    def __init__(self, m: Motion, model):
        import jax

        from .body import forward

        self.m, self.model = m, model
        nb = min(m.betas.shape[1], model.num_betas)
        self.betas = m.betas[:, :nb]
        self._fwd = jax.jit(lambda b, r, t: forward(model, b, r, t).vertices)
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def vertices(self, p: int, f: int) -> np.ndarray:
        key = (p, f)
        if key not in self._cache:
            if len(self._cache) > 4096:
                self._cache.clear()
            m = self.m
            self._cache[key] = np.asarray(
                self._fwd(self.betas[p], m.rotmats[p, f].astype(np.float32), m.transl[p, f].astype(np.float32)),
                np.float32,
            )
        return self._cache[key]


class _Video:
    """The result's video frames, decoded small in a background thread (None until decoded)."""

    def __init__(self, folder: Path, frames: np.ndarray, long_side: int = 320):
        self.frames: dict[int, np.ndarray] = {}
        self.thread = None
        from josh_jax.jsonfile import read_json

        try:
            s = read_json(folder / "summary.json", "summary.json", "")
            path, start = Path(s["video"]), int(s.get("start") or 0)
        except (OSError, ValueError, KeyError, TypeError, OverflowError):
            return
        if not path.is_file():
            return

        def decode():
            from josh_jax.video import VideoError, iter_frames, probe

            try:
                info = probe(path, start)
                for i, im in iter_frames(info, long_side, indices=frames):
                    self.frames[int(i)] = im
            except (VideoError, OSError, ValueError):
                pass

        self.thread = threading.Thread(target=decode, daemon=True)
        self.thread.start()


class Viewer:
    """A running viewer of one output folder. ``set_frame`` moves the timeline; ``stop`` frees the port."""

    def __init__(
        self,
        folder: str | Path,
        host: str = "127.0.0.1",
        port: int = 8080,
        fps: float | None = None,
        body_model=None,
        frustum_every: int = 10,
        max_points: int = 200_000,
        verbose: bool = False,
    ):
        folder = Path(folder)
        self.folder = folder
        self.m = load_motion(folder, fps)
        self.model = body_model_for(self.m, body_model)
        init_path = folder / "init.npz"
        self.init = load_motion(init_path, self.m.fps) if init_path.is_file() else None
        self.bodies = {"joint": _Bodies(self.m, self.model)}
        if self.init is not None:
            self.bodies["init"] = _Bodies(self.init, self.model)
        self.video = _Video(folder, self.m.frame_index)
        self.F = len(self.m.frame_index)
        self.frame = 0
        self.playing = False
        self._stop = threading.Event()
        self._lock = threading.RLock()

        self.server = _start_server(host, port, verbose)
        self.host, self.port = host, self.server.get_port()
        s = self.server
        s.scene.set_up_direction("-y")  # josh_jax's world is OpenCV: y down
        s.gui.configure_theme(control_width="medium", show_share_button=False)
        self.groups = {"joint": s.scene.add_frame("/joint", show_axes=False)}
        if self.init is not None:
            self.groups["init"] = s.scene.add_frame("/init", show_axes=False)
        self._add_static(max_points, frustum_every)
        self.meshes: dict[str, list] = {}
        for name, b in self.bodies.items():
            col = (lambda p: INIT_COLOR) if name == "init" else (lambda p: JOINT_COLORS[p % len(JOINT_COLORS)])
            self.meshes[name] = [
                s.scene.add_mesh_simple(
                    f"/{name}/person_{int(pid)}",
                    b.vertices(p, 0),
                    np.asarray(self.model.faces),
                    color=col(p),
                    side="double",
                    visible=bool(b.m.visible[p, 0]),
                )
                for p, pid in enumerate(b.m.person_ids)
            ]
        self._add_gui()
        self._set_initial_camera()
        self.set_frame(0)
        self._thread = threading.Thread(target=self._play_loop, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ scene
    def _add_static(self, max_points: int, every: int):
        s, m = self.server, self.m
        for name, mm in (("joint", m), ("init", self.init)):
            if mm is None:
                continue
            pts, cols = mm.points, mm.point_colors
            if len(pts) > max_points:
                keep = np.random.default_rng(0).choice(len(pts), max_points, replace=False)
                pts, cols = pts[keep], cols[keep]
            if len(pts):
                s.scene.add_point_cloud(f"/{name}/points", pts, cols, point_size=0.015, point_shape="rounded")
            c = mm.cam_to_world[:, :3, 3]
            if len(c) > 1:
                s.scene.add_line_segments(
                    f"/{name}/camera_path",
                    np.stack([c[:-1], c[1:]], 1).astype(np.float32),
                    colors=(40, 40, 40) if name == "joint" else INIT_COLOR,
                    thickness=2.0,
                    thickness_units="screen",
                )
            for i in range(0, len(c), max(1, every)):
                T = mm.cam_to_world[i]
                s.scene.add_camera_frustum(
                    f"/{name}/cameras/c{i:05d}",
                    fov=self._fov(),
                    aspect=self._aspect(),
                    scale=0.08,
                    color=(90, 90, 90) if name == "joint" else INIT_COLOR,
                    wxyz=_wxyz(T[:3, :3]),
                    position=T[:3, 3],
                    thickness=1.0,
                    thickness_units="screen",
                )
            for p, pid in enumerate(mm.person_ids):  # each person's path: the pelvis joint where placed
                path = mm.joints_world[p, mm.visible[p], 0]
                if len(path) > 1:
                    col = INIT_COLOR if name == "init" else JOINT_COLORS[p % len(JOINT_COLORS)]
                    s.scene.add_line_segments(
                        f"/{name}/path_{int(pid)}",
                        np.stack([path[:-1], path[1:]], 1).astype(np.float32),
                        colors=col,
                        thickness=3.0,
                        thickness_units="screen",
                    )
        self.current_cam = s.scene.add_camera_frustum(
            "/joint/current_camera",
            fov=self._fov(),
            aspect=self._aspect(),
            scale=0.15,
            color=(20, 20, 20),
            thickness=2.5,
            thickness_units="screen",
        )

    def _fov(self) -> float:
        return float(2 * np.arctan(self.m.image_size[1] / (2 * self.m.intrinsics[1, 1])))

    def _aspect(self) -> float:
        return float(self.m.image_size[0] / self.m.image_size[1])

    def _set_initial_camera(self):
        """First view: behind and above the video camera at the first frame, looking at the first person."""
        m, cam = self.m, self.server.initial_camera
        T = m.cam_to_world[0]
        vis = np.where(m.visible[:, 0])[0]
        target = m.joints_world[vis[0], 0, 0] if len(vis) else T[:3, 3] + 3.0 * T[:3, 2]
        d = float(np.linalg.norm(target - T[:3, 3]))
        up = -T[:3, 1]
        cam.position = T[:3, 3] - 0.6 * d * T[:3, 2] + 0.25 * d * up
        cam.look_at = target
        cam.up = up
        cam.fov = self._fov()

    def top_view(self, client=None):
        """Look straight down (along the world's up, -y) at the camera and people paths."""
        m = self.m
        pts = [m.cam_to_world[:, :3, 3]] + [m.joints_world[p, m.visible[p], 0] for p in range(len(m.person_ids))]
        pts = np.concatenate([p for p in pts if len(p)])
        centre = 0.5 * (pts.min(0) + pts.max(0))
        extent = float(np.ptp(pts[:, [0, 2]], axis=0).max()) + 1.0
        h = extent / (2 * np.tan(np.radians(30)))
        for c in [client] if client is not None else self.server.get_clients().values():
            c.camera.up_direction = (0.0, 0.0, 1.0)  # screen up = the world's forward (z)
            c.camera.position = centre + np.array([0.0, -h, 0.0])
            c.camera.look_at = centre
            c.camera.fov = float(np.radians(60))

    # ------------------------------------------------------------------ timeline
    def set_frame(self, f: int) -> None:
        """Show frame row ``f`` (0..F-1) of the results: bodies, the current camera and its video frame."""
        f = int(np.clip(f, 0, self.F - 1))
        with self._lock:
            self.frame = f
            for name, b in self.bodies.items():
                mf = min(f, len(b.m.frame_index) - 1)
                for p, h in enumerate(self.meshes[name]):
                    vis = bool(b.m.visible[p, mf])
                    if vis:
                        h.vertices = b.vertices(p, mf)
                    h.visible = vis
            T = self.m.cam_to_world[f]
            self.current_cam.wxyz = _wxyz(T[:3, :3])
            self.current_cam.position = T[:3, 3]
            im = self.video.frames.get(int(self.m.frame_index[f]))
            if im is not None:
                self.current_cam.image = im
            if self.gui_frame.value != f:
                self.gui_frame.value = f
            self.gui_label.content = (
                f"frame {f + 1}/{self.F} (video frame {int(self.m.frame_index[f])}, "
                f"{self.m.frame_index[f] / self.m.fps:.2f} s)"
            )
            if self.follow.value:
                for c in self.server.get_clients().values():
                    c.camera.wxyz = _wxyz(T[:3, :3])
                    c.camera.position = T[:3, 3]

    def _add_gui(self):
        g = self.server.gui
        m = self.m
        g.add_markdown(f"**{self.folder.name}**: {len(m.person_ids)} person(s), {self.F} frames at {m.fps:g} fps")
        self.gui_label = g.add_markdown("")
        self.gui_play = g.add_button("Play / pause")
        self.gui_frame = g.add_slider("Frame", min=0, max=max(self.F - 1, 1), step=1, initial_value=0)
        self.gui_speed = g.add_dropdown("Speed", ("0.25x", "0.5x", "1x", "2x", "4x"), initial_value="1x")
        self.gui_show = {"joint": g.add_checkbox("Joint result", initial_value=True)}
        if self.init is not None:
            self.gui_show["init"] = g.add_checkbox("Front ends only (init)", initial_value=False)
            self.groups["init"].visible = False
        self.follow = g.add_checkbox("Follow the video camera", initial_value=False)
        top = g.add_button("Trajectory from above")

        @self.gui_play.on_click
        def _(_e):
            self.playing = not self.playing

        @self.gui_frame.on_update
        def _(_e):
            if int(self.gui_frame.value) != self.frame:
                self.set_frame(int(self.gui_frame.value))

        for name, box in self.gui_show.items():

            def toggle(_e, name=name, box=box):
                self.groups[name].visible = bool(box.value)

            box.on_update(toggle)

        @top.on_click
        def _(e):
            self.top_view(e.client)

    def _play_loop(self):
        while not self._stop.is_set():
            t0 = time.perf_counter()
            speed = float(self.gui_speed.value.rstrip("x"))
            if self.playing and self.F > 1:
                self.set_frame((self.frame + 1) % self.F)
                fps = min(max(float(self.m.fps) * speed, FPS_RANGE[0]), FPS_RANGE[1])
                dt = 1.0 / fps if np.isfinite(fps) else 1.0 / FPS_RANGE[1]
            else:
                dt = 0.1  # paused: look for play / stop ten times a second, nothing more
            self._stop.wait(max(0.0, dt - (time.perf_counter() - t0)))

    def stop(self) -> None:
        """Stop playback and the server (frees the port)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.stop()


FPS_RANGE = (0.1, 1000.0)  # playback rates the viewer accepts (a summary.json's fps is clamped to it)


def check_settings(host: str, port: int, fps: float | None) -> None:
    """Refuse settings the server cannot use, before anything starts (viser retries 1000 ports on any
    bind error and would then wait for ever): a port outside 0-65535 (0: any free one), an address that
    does not resolve, an fps outside :data:`FPS_RANGE`. Raises ValueError with one line."""
    import socket

    if not 0 <= port <= 65535:
        raise ValueError(f"--port must be 0-65535 (0: any free port), got {port}")
    if fps is not None and not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        raise ValueError(f"--fps must be {FPS_RANGE[0]:g}-{FPS_RANGE[1]:g}, got {fps}")
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"--host {host!r} is not an address of this machine ({exc}); use 127.0.0.1") from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m josh_jax.view", description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="a demo or solve output folder (holding results.npz)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=8080, help="port (the next free one is taken if busy)")
    ap.add_argument("--fps", type=float, default=None, help="playback fps (default: the video's, from summary.json)")
    ap.add_argument("--body-model", default=None, help="body model file, for results made with SMPL")
    ap.add_argument("--play", action="store_true", help="start playing")
    args = ap.parse_args(argv)
    try:
        import viser  # noqa: F401
    except ImportError:
        print("error: the viewer needs viser: pip install -e '.[viz]'", file=sys.stderr)
        return 2

    try:
        check_settings(args.host, args.port, args.fps)
        if not args.folder.is_dir():
            raise FileNotFoundError(f"{args.folder} is not a folder (pass a demo or solve output folder)")
        v = Viewer(args.folder, args.host, args.port, args.fps or video_fps(args.folder), args.body_model)
    except (JoshError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    v.playing = args.play
    print(f"josh_jax viewer of {args.folder}: open {v.url} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        v.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
