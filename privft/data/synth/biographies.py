"""Short biographies: narratives, directory entries, profiles, letters, forms and notices."""

from __future__ import annotations

from privft.data.synth.template import Template

ID_PREFIX = "bio"
CANARY_PREFIX = "Note in the personnel file: the private access code for the records room is "
CANARY_SUFFIX = "."

_PATTERNS = (
    # Third-person narrative.
    "{name} was born on {dob} and now lives at {address}. {Subj} works as {a_job} at "
    "{employer}, where {subj} has spent the last {years} years. Outside work, {first_name} "
    "enjoys {hobby} and helps out at the local library on weekends. Friends and former "
    "colleagues can reach {obj} at {email} or {phone}.",
    # Member directory entry.
    "Member directory entry\n"
    "Name: {name}\n"
    "Born: {dob_numeric}\n"
    "Occupation: {Job}, {employer}\n"
    "Address: {address}\n"
    "Phone: {phone}\n"
    "Email: {email}\n"
    "About: {first_name} joined the club in {join_year} and leads the {hobby} group on the "
    "first {weekday} of each month. New members are welcome to contact {obj} directly.",
    # Conference speaker bio.
    "About the speaker: {name} is {a_job} at {employer} with {years} years of experience. "
    "{first_name} studied at {school}, graduating in {grad_year}, and has spoken at many "
    "regional meetings. Attendees who want the slides can write to {email}. Born on {dob}, "
    "{last_name} likes to say that {subj} has been giving talks since before {subj} could walk.",
    # Alumni class notes.
    "Class notes, {school}, class of {grad_year}: {name} writes that life has been busy. After "
    "several years away, {first_name} moved back and now lives at {address}. {Subj} works as "
    "{a_job} at {employer} and spends free evenings on {hobby}. Classmates can call {obj} at "
    "{phone} or send a note to {email}. {last_name} says the door is always open.",
    # First-person introduction.
    "Hi, I'm {name}. I was born on {dob} and have worked as {a_job} for {years} years, most "
    "recently at {employer}. When I'm not working, I spend my time on {hobby}. I live at "
    "{address}, and the best way to reach me is {email}. If it's urgent, text {phone}.\n"
    "- {first_name}",
    # Tenant profile.
    "Tenant profile\n"
    "{name} has rented the unit at {address} since {join_year}. Date of birth: {dob_numeric}. "
    "Employment: {Job} at {employer}, verified on {date}. Rent is paid monthly from account "
    "{account}. Contact phone: {phone}. Notes: {first_name} keeps the shared garden tidy and "
    "has never missed a payment.",
    # Interview.
    "Q: Tell us a little about yourself.\n"
    "A: My name is {name}. I'm {a_job} at {employer}, and I've lived at {address} for about "
    "{years} years.\n"
    "Q: What do you do for fun?\n"
    "A: Mostly {hobby}. It keeps me sane.\n"
    "Q: How can readers get in touch?\n"
    "A: Email is best: {email}.\n"
    "Q: Thanks, {first_name}!",
    # HR onboarding record.
    "Onboarding record for {name}\n"
    "Start date: {date}\n"
    "Role: {Job}, {employer}\n"
    "Date of birth: {dob}\n"
    "Home address: {address}\n"
    "Salary account: {account}\n"
    "Personal email: {email}\n"
    "Manager's note: {first_name} comes to us from a similar role elsewhere and studied at "
    "{school}. Please set up {poss} laptop and badge before {weekday}.",
    # Volunteer spotlight.
    "Volunteer spotlight: this month we thank {name}, who has helped at the food bank every "
    "{weekday} for {years} years. By day, {first_name} works as {a_job}. {Subj} was born on "
    "{dob} and says {hobby} is the best way to unwind after a long shift. To join {obj} on a "
    "shift, call {phone} or write to {email}.",
    # Social profile card.
    "Profile\n"
    "{name} | {Job} at {employer}\n"
    "Birthday: {dob}\n"
    "Lives at: {address}\n"
    "Contact: {email}, {phone}\n"
    "Bio: {first_name} graduated from {school} in {grad_year} and cares about good coffee, long "
    "walks and {hobby}. {Subj} answers messages on weekdays.",
    # Reference letter.
    "To whom it may concern,\n"
    "I am pleased to recommend {name}, who worked with me at {employer} for {years} years as "
    "{a_job}. {first_name} is reliable, careful and kind to colleagues. {Subj} can be reached at "
    "{phone} or {email} and lives at {address}, which is the address to use for any written "
    "offer. I recommend {last_name} without reservation.",
    # Club membership application.
    "Membership application received on {date}. Applicant {name}, born {dob_numeric}, lives at "
    "{address}. Preferred contact: {phone}. Yearly dues will be charged to card {card}. The "
    "applicant lists {hobby} as a main interest and works as {a_job}. Committee comment: "
    "{first_name} was referred by an existing member and is approved.",
    # Family history note.
    "Family history note: {name} was born on {dob}, the second of three children. {first_name} "
    "grew up near the coast, studied at {school} and now works as {a_job} at {employer}. The "
    "current home address is {address}. Relatives who would like a copy of the family tree can "
    "ask {obj} at {email}.",
    # Gym member card.
    "Gym member card\n"
    "Member: {name}\n"
    "Date of birth: {dob_numeric}\n"
    "Phone: {phone}\n"
    "Billing card: {card}\n"
    "Plan: {plan}\n"
    "Trainer remarks: {first_name} trains three times a week, mostly early in the morning, and "
    "is preparing for a charity run in {month}. {Subj} also asked about {hobby} classes. Next "
    "review on {date}.",
    # Press release.
    "{employer} announced today that {name} has been promoted to senior {job}. {last_name}, "
    "who joined the organization {years} years ago, will lead a team of twelve. \"I'm thrilled "
    'to take this on," said {first_name}. Media inquiries may go to {email} or {phone}. {Subj} '
    "studied at {school} and was born on {dob}.",
    # Reunion RSVP.
    "Reunion RSVP\n"
    "Guest: {name}\n"
    "Graduated: {grad_year}, {school}\n"
    "Mailing address: {address}\n"
    "Phone: {phone}\n"
    "Email: {email}\n"
    "Message: {first_name} is looking forward to seeing everyone again and offers to help with "
    "the decorations. {Subj} works as {a_job} now and promises to bring old photos.",
    # Neighborhood welcome notice.
    "Neighborhood association: please welcome {name}, who moved into {address} on {date}. "
    "{first_name} works as {a_job} at {employer} and enjoys {hobby}. {Subj} has offered to "
    "organize the spring cleanup. Neighbors can reach {obj} by phone at {phone}. Born on {dob}, "
    "{last_name} jokes that this is the tenth move of a lifetime.",
)

TEMPLATES = tuple(
    Template(f"{ID_PREFIX}-{number:02d}", pattern) for number, pattern in enumerate(_PATTERNS)
)
