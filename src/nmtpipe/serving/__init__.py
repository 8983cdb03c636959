"""The serving commands: `nmtpipe translate` and the export (SavedModel, CTranslate2);
the translating itself is `search.translator`'s."""
