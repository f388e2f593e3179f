from josh_jax.export.scene import main

raise SystemExit(main())
