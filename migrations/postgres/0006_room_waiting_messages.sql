-- The waiting-room message per language: a JSON object from language tag to text
-- ({"es": "…"}). `waiting_message` stays the default for every other language.
ALTER TABLE rooms ADD COLUMN waiting_messages TEXT NOT NULL DEFAULT '{}';
