/// The SQLite store: see the files of this target.
