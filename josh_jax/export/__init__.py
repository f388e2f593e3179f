"""Results -> files a person opens: scene.glb, animation.glb, BVH, overlay video, plots,
recording.rrd; the one reader the exports share (:mod:`josh_jax.export.motion`).

    python -m josh_jax.export DIR --formats glb,gltf-anim,bvh
"""

from josh_jax.export.scene import build_scene, write_glb

__all__ = ["build_scene", "write_glb"]
