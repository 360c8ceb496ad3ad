"""The compact listing: what goes in comes out, in order, through the file workers read."""

import io

from visionpipe.components.ingest.entries import Entries, Entry


def test_entries_keep_every_path_label_and_split_through_their_file():
    listed = [
        Entry("/data/cat/1.jpg", "cat"),
        Entry("/data/dög/ü.png", "dög", "train"),  # non-ASCII paths and labels
        Entry("/data/cat|dog/2.jpg", "cat|dog", "test"),
        Entry("/data/cat/3.jpg", "cat", "val"),
    ]
    entries = Entries(listed)
    assert len(entries) == 4 and list(entries) == listed and entries[1] == listed[1]
    saved = io.BytesIO()
    entries.spread().save(saved)
    saved.seek(0)
    loaded = Entries.load(saved)
    assert sorted(loaded) == sorted(listed) and loaded == entries.spread()


def test_spread_mixes_classes_in_a_fixed_order():
    listed = [Entry(f"/d/{label}/{i}.jpg", label) for label in ("a", "b") for i in range(50)]
    spread = list(Entries(listed).spread())
    assert spread == list(Entries(reversed(listed)).spread())  # whatever the listing order
    assert {e.label for e in spread[:10]} == {"a", "b"}
    assert not Entries() and len(Entries()) == 0


def test_the_listing_pages_give_every_entry_to_one_task_in_spread_order(tmp_path):
    from visionpipe.components.ingest import check

    listed = Entries(Entry(f"/d/{label}/{i}.jpg", label) for label in ("a", "b", "c") for i in range(700))
    tasks = check.write_listing(listed.spread(), str(tmp_path), files_per_task=30)
    assert len({page for page, _, _ in tasks}) == 5  # 480 entries (16 tasks of 30) a page
    taken = [entry for page, start, stop in tasks for entry in list(Entries.load(page))[start:stop]]
    assert taken == list(listed.spread()) and max(stop - start for _, start, stop in tasks) == 30
