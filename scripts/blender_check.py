"""Import ``animation.glb`` into Blender and compare bone heads with results.npz.

    blender -b --python scripts/blender_check.py -- OUT_DIR/animation.glb OUT_DIR/results.npz [FPS]

Run by Blender's own Python (bpy; numpy ships with Blender). Blender's glTF
importer turns glTF's y-up into Blender's z-up: (x, y, z)_blender =
(x, -z, y)_glTF; josh_jax's glTF is its OpenCV world turned 180 degrees about
x, so (x, y, z)_blender = (x, z, -y)_OpenCV. Prints the largest distance between
every bone head and ``joints_world`` at the first, middle and last frames, and
the animation's frame range and fps.
"""

import sys

import bpy
import numpy as np

if not hasattr(np, "bool"):  # Debian's Blender 3.4 glTF add-on still uses np.bool (gone since numpy 1.24)
    np.bool = bool
glb, npz, fps = (sys.argv[sys.argv.index("--") + 1 :] + ["30"])[:3]
bpy.ops.wm.read_factory_settings(use_empty=True)
# the importer turns glTF seconds into frames at the scene's rate: set it to the video's first
bpy.context.scene.render.fps = round(float(fps))
bpy.ops.import_scene.gltf(filepath=glb)
res = np.load(npz)
J = res["joints_world"]
names = [
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
]
scene = bpy.context.scene
arms = [o for o in scene.objects if o.type == "ARMATURE"]
acts = [a.name for a in bpy.data.actions]
print(
    f"armatures {[a.name for a in arms]}, actions {acts}, frames {scene.frame_start}-{scene.frame_end}, "
    f"fps {scene.render.fps / scene.render.fps_base:g}, cameras {[o.name for o in scene.objects if o.type == 'CAMERA']}"
)
F = J.shape[1]
for p, arm in enumerate(arms):
    pid = int(res["person_ids"][p])
    worst = 0.0
    for f in (0, F // 2, F - 1):
        scene.frame_set(f)  # the importer puts glTF t = 0 on Blender frame 0
        for j, n in enumerate(names):
            b = arm.pose.bones[f"p{pid}_{n}"]
            head = np.array(arm.matrix_world @ b.head)
            want = np.array([J[p, f, j, 0], J[p, f, j, 2], -J[p, f, j, 1]])
            worst = max(worst, float(np.linalg.norm(head - want)))
    print(f"person {pid}: largest bone-head distance to joints_world over 3 frames: {worst * 1000:.3f} mm")

# the BVH of the first person, through Blender's BVH importer (y-up -> z-up as for glTF; BVH frame 0 -> frame 1)
from pathlib import Path  # noqa: E402

bvh = Path(glb).parent / "bvh" / f"person_{int(res['person_ids'][0])}.bvh"
if bvh.is_file():
    import builtins

    _open = builtins.open  # Debian's Blender 3.4 BVH add-on opens with mode 'rU' (refused since Python 3.11)
    builtins.open = lambda f, mode="r", *a, **k: _open(f, mode.replace("U", ""), *a, **k)
    bpy.ops.import_anim.bvh(
        filepath=str(bvh),
        global_scale=1.0,
        frame_start=1,
        use_fps_scale=False,
        update_scene_fps=True,
        update_scene_duration=True,
        axis_forward="-Z",
        axis_up="Y",
    )
    arm = bpy.context.object
    worst = 0.0
    for f in (0, F // 2, F - 1):
        scene.frame_set(1 + f)
        for j, n in enumerate(names):
            head = np.array(arm.matrix_world @ arm.pose.bones[n].head)
            want = np.array([J[0, f, j, 0], J[0, f, j, 2], -J[0, f, j, 1]])
            worst = max(worst, float(np.linalg.norm(head - want)))
    print(
        f"{bvh.name}: Blender's BVH import, largest bone-head distance to joints_world over 3 frames: "
        f"{worst * 1000:.3f} mm (scene fps {scene.render.fps / scene.render.fps_base:g}, "
        f"frames {scene.frame_start}-{scene.frame_end})"
    )
