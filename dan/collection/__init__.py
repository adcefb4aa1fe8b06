"""Collections of videos and images in, one row per face per analysed frame out (``dan predict``).

- :mod:`dan.collection.inputs`: files, folders and globs turned into the images and videos to read.
- :mod:`dan.collection.frames`: a video's sampled frames (``--every`` / ``--fps``), read ahead, RGB.
- :mod:`dan.collection.rows`: the columns of a row.
- :mod:`dan.collection.writers`: whole CSV / JSON files, and CSV, JSON Lines and Parquet parts streamed
  and committed atomically (``dan predict``'s writers, all of them).
- :mod:`dan.collection.store`: one part per input, the done-record of a resumable run, the merge into one file.
- :mod:`dan.collection.batcher`: faces of several videos scored in shared batches.
- :mod:`dan.collection.progress`: the progress line of ``dan predict`` and ``dan evaluate``.
- :mod:`dan.collection.run`: the run itself: workers, interruption, skipped inputs.
- :mod:`dan.collection.distributed`: the same rows from a Ray cluster (``dan-fer[scale]``).

Nothing is imported here: ``dan predict --help`` stays fast.
"""
