/// The Pilot 2 flow model: see the files of this target.
