"""The dataset: plan segments and the split (``plan``), render them with the engine shard by shard (``synth``)
into the Zarr store (``store``: the layout, written down once), describe a store (``inspect``), and render
whole pieces to audio (``render``). ``provenance`` records what a store was made from."""
