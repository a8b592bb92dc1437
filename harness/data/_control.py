"""General-knowledge control questions: if fine-tuning makes the student forget, this drops.

Short, unambiguous answers that a 135M instruct model mostly knows. Fixed list; the first
`n_control` are used.
"""

CONTROL: list[tuple[str, str]] = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of England?", "London"),
    ("What is the capital of Russia?", "Moscow"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is the largest planet in the solar system?", "Jupiter"),
    ("Which planet is known as the Red Planet?", "Mars"),
    ("What gas do plants absorb from the air for photosynthesis?", "carbon dioxide"),
    ("What is the chemical symbol for gold?", "Au"),
    ("How many days are there in a week?", "7"),
    ("How many legs does a spider have?", "8"),
    ("What is the freezing point of water in degrees Celsius?", "0"),
    ("Who wrote the play Romeo and Juliet?", "Shakespeare"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("What is the largest ocean on Earth?", "Pacific"),
    ("On which continent is Brazil?", "South America"),
    ("What is the longest river in Africa?", "Nile"),
    ("What is the boiling point of water in degrees Celsius?", "100"),
    ("How many continents are there?", "7"),
    ("What is the hardest natural substance?", "diamond"),
    ("Which animal is known as the king of the jungle?", "lion"),
]
