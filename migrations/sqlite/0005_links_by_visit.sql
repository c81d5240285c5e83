-- Visit history shows whom each visit was for: the name on the visit's patient link,
-- looked up per visit.
CREATE INDEX links_visit ON links(visit_id);
