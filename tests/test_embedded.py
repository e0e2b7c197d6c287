"""The embedded PostgreSQL's data folder."""

from __future__ import annotations

from pathlib import Path

from booking.store.embedded import MAX_SOCKET_PATH, data_folder


def test_data_lives_under_the_data_dir_when_the_socket_path_fits() -> None:
    assert data_folder(Path("/srv/app/.data")) == Path("/srv/app/.data/pg")


def test_a_deep_checkout_gets_a_short_stable_folder_for_the_socket() -> None:
    deep = Path("/builds/" + "nested/" * 20 + ".data")
    folder = data_folder(deep)
    assert len(str(folder / ".s.PGSQL.5432")) <= MAX_SOCKET_PATH
    assert folder == data_folder(deep)  # the same checkout keeps its data between runs
    assert folder != data_folder(Path("/builds/" + "other/" * 20 + ".data"))
